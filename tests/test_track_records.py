"""Pick records of live analyses (issue #21): one per completion (a refine's too), never twice,
blind to every candle after the decision, kept apart from the gist and pruned by retention."""

import time

import numpy as np
import pytest

from analysis.engine.step_runner import run_step
from analysis.track.live_records import universe_of
from analysis.track.record_store import RecordStore
from tests.helpers import redis_snapshot
from tests.track_fixtures import (
    DECISION_ROW,
    MARKETS,
    csv_config,
    decision_t_ms,
    run_to_completion,
    series,
    write_folder,
)


@pytest.fixture
def records(runtime):
    return RecordStore(runtime.redis, runtime.keys, retention_days=runtime.settings.track_retention_days)


def record_of(records, gist):
    stored = records.get(f"{gist.id}:{gist.seq}")
    assert stored is not None, f"no pick record for {gist.id} at seq {gist.seq}"
    return stored


def test_a_completed_analysis_leaves_a_record_of_its_whole_universe_at_t(
    tmp_path, settings, local_service, queue, runtime, actor, records
):
    source = write_folder(tmp_path / "a", {s: series(s).iloc[:DECISION_ROW] for s in MARKETS})
    done = run_to_completion(local_service, queue, runtime, csv_config(settings, source), actor)
    rec = record_of(records, done).record
    assert rec.t == decision_t_ms()
    assert (rec.timeframe, rec.strategy, rec.k, rec.analysis_id) == ("1h", "score", 3, done.id)
    assert rec.model is None and rec.schedule_id is None and rec.source == "csv a"
    # every market, ranked 1..n; the top K is the card's top K in the card's order
    assert sorted(rec.symbols()) == sorted(MARKETS)
    assert [m.rank for m in rec.universe] == list(range(1, len(MARKETS) + 1))
    assert rec.top() == [item.symbol for item in done.result]
    rest = [m.score for m in rec.universe[3:]]
    assert rest == sorted(rest, reverse=True)


@pytest.mark.slow
def test_no_candle_after_t_changes_the_record_and_one_at_or_before_t_may(
    tmp_path, settings, local_service, queue, runtime, actor, records
):
    t_ms = decision_t_ms()
    clean = {s: series(s).iloc[: DECISION_ROW + 200] for s in MARKETS}
    garbled = {s: f.copy() for s, f in clean.items()}
    for frame in garbled.values():  # every candle after t: closes, volumes, whole bars
        after = frame.index.as_unit("ms").asi8 >= t_ms
        frame.loc[after, ["open", "high", "low", "close"]] *= np.linspace(0.2, 5, after.sum())[:, None]
        frame.loc[after, "volume"] *= 100
    garbled = {s: f.drop(f.index[DECISION_ROW + 50]) for s, f in garbled.items()}  # a lost bar
    before = {s: f.copy() for s, f in clean.items()}
    before["DOGE/USDT"].iloc[DECISION_ROW - 1, 3] *= 1.3  # the last candle ranked (closes at t)

    def ranked(name, frames):
        source = write_folder(tmp_path / name, frames)
        done = run_to_completion(
            local_service, queue, runtime, csv_config(settings, source, t_ms=t_ms), actor
        )
        return record_of(records, done).record

    a, b, c = ranked("clean", clean), ranked("garbled", garbled), ranked("before", before)
    assert a.t == b.t == c.t == t_ms
    assert a.universe == b.universe  # symbols, scores and ranks, to the last digit
    doge = {m.symbol: m.score for m in c.universe}["DOGE/USDT"]
    assert doge != {m.symbol: m.score for m in a.universe}["DOGE/USDT"]


def test_each_completion_writes_one_record_a_refine_another_and_a_redelivery_none(
    tmp_path, settings, local_service, queue, runtime, actor, records
):
    source = write_folder(tmp_path / "a", {s: series(s).iloc[:DECISION_ROW] for s in MARKETS})
    done = run_to_completion(local_service, queue, runtime, csv_config(settings, source), actor)
    first = record_of(records, done)
    # the completing step delivered again (a broker redelivery): a no-op, nothing written
    before = redis_snapshot(runtime.redis)
    chain = runtime.store.chain(done.id)
    assert run_step(runtime, done.id, chain, done.seq).decision.startswith("skip:")
    assert {k: v for k, v in redis_snapshot(runtime.redis).items() if b"track" in k} == {
        k: v for k, v in before.items() if b"track" in k
    }

    assert local_service.refine(done.id, actor, generation=done.refine_gen).changed
    queue.drain(runtime)
    refined = local_service.get(done.id, actor)
    second = record_of(records, refined)
    assert second.id != first.id and refined.seq > done.seq
    assert second.record.top() == [item.symbol for item in refined.result]  # the steadiest set
    ids = [i for i in records.group_ids(first.group) if i.startswith(done.id)]
    assert ids == [first.id, second.id]
    # a retried write of the same completion changes nothing
    assert not records.write(second, due_s=0, now_s=time.time())
    assert [i for i in records.group_ids(first.group) if i.startswith(done.id)] == ids


def test_records_outlive_the_gist_and_go_with_their_retention(
    tmp_path, settings, local_service, queue, runtime, actor, records
):
    source = write_folder(tmp_path / "a", {s: series(s).iloc[:DECISION_ROW] for s in MARKETS})
    done = run_to_completion(local_service, queue, runtime, csv_config(settings, source), actor)
    stored = record_of(records, done)
    k = runtime.keys
    ttl = runtime.redis.ttl(k.track_record(stored.id))
    assert 180 * 86400 < ttl <= 182 * 86400  # the retention, and two days for the pass to prune
    runtime.redis.delete(k.gist(done.id), k.history(done.id), k.candles(done.id))  # expired
    assert records.get(stored.id) == stored
    written = runtime.redis.zscore(k.track_all(), stored.id)
    assert abs(written - time.time()) < 60  # retention counts from the write, not from t
    records.prune(written + 179 * 86400)
    assert records.get(stored.id) == stored
    assert records.prune(written + 181 * 86400) >= 1
    assert records.get(stored.id) is None
    for key in (k.track_all(), k.track_group(stored.group), k.track_due()):
        assert runtime.redis.zscore(key, stored.id) is None


def test_the_llm_universe_is_ranked_by_the_judge_model_strengths():
    from analysis.models import RankingConfig

    config = RankingConfig(
        markets=["A/USDT", "B/USDT", "C/USDT", "D/USDT"],
        timeframe="1h",
        strategy="llm",
        top_k=2,
        target_confidence=0.8,
    )
    state = {
        "markets": config.markets,
        "estimate": {"strengths": {"A/USDT": 0.1, "B/USDT": 2.0, "C/USDT": -1.0, "D/USDT": 0.5}},
    }
    result = [{"rank": 1, "symbol": "B/USDT", "score": 2.0}, {"rank": 2, "symbol": "D/USDT", "score": 0.5}]
    assert [(m.symbol, m.rank) for m in universe_of(config, state, result)] == [
        ("B/USDT", 1),
        ("D/USDT", 2),
        ("A/USDT", 3),
        ("C/USDT", 4),
    ]


@pytest.mark.usefixtures("worker")
@pytest.mark.slow
def test_an_llm_analysis_records_its_judge_model_and_ranks_every_market(
    llm_server, runtime, service, actor, records
):
    from analysis.config_factory import RankingConfigFactory
    from tests.helpers import wait_for_status

    strengths = {s: float(len(MARKETS) - i) for i, s in enumerate(MARKETS)}
    llm_server.reset()
    llm_server.set_strengths(strengths)
    try:
        factory = RankingConfigFactory(runtime.settings, runtime.provider, llm_configured=True)
        config = factory.create_ranking_config(
            symbols=list(MARKETS), top_k=2, strategy="llm", prompt="steady uptrends", target=0.9
        )
        done = wait_for_status(service, service.start(config, actor).id, actor, ["COMPLETED"])
    finally:
        llm_server.set_strengths({})
    rec = record_of(records, done).record
    assert (rec.strategy, rec.model, rec.k) == ("llm", "judge-small", 2)  # the workers' OPENAI_MODEL
    assert rec.top() == [item.symbol for item in done.result]
    assert rec.symbols() == list(MARKETS)  # the judge's strengths order every market
