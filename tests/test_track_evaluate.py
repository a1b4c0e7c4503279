"""The evaluation pass over live pick records: a horizon is scored once its candles are all there
(from the record's own source), never on partial data; a market gone after t is counted, flagged."""

import time

import numpy as np
import pytest

from analysis.track.live_evaluate import evaluate_due
from analysis.track.record_store import RecordStore
from tests.track_fixtures import (
    DECISION_ROW,
    MARKETS,
    csv_config,
    decision_t_ms,
    run_to_completion,
    series,
    write_folder,
)

HORIZONS = [1, 4, 24]
DAY_S = 86400


@pytest.fixture
def records(runtime):
    return RecordStore(runtime.redis, runtime.keys, retention_days=runtime.settings.track_retention_days)


def excess_by_hand(symbols: list[str], k: int, horizon: int, rows: dict) -> float:
    """Entry at the close of the bar after t (row DECISION_ROW), exit h bars later."""
    r = {
        s: rows[s]["close"].iloc[DECISION_ROW + horizon] / rows[s]["close"].iloc[DECISION_ROW] - 1
        for s in symbols
    }
    return float(np.mean([r[s] for s in symbols[:k]]) - np.mean(list(r.values())))


@pytest.mark.slow
def test_a_record_is_scored_horizon_by_horizon_as_its_candles_close(
    tmp_path, settings, local_service, queue, runtime, actor, records
):
    folder = tmp_path / "live"
    full = {s: series(s) for s in MARKETS}
    source = write_folder(folder, {s: f.iloc[:DECISION_ROW] for s, f in full.items()})
    done = run_to_completion(local_service, queue, runtime, csv_config(settings, source), actor)
    rid = f"{done.id}:{done.seq}"
    rec = records.get(rid).record
    now = time.time()

    # nothing after t yet: retried later, nothing scored
    counts = evaluate_due(records, HORIZONS, now, retry_s=60)
    assert counts.scored == 0 and counts.waiting >= 1
    assert records.results(rid) == {}
    assert now < runtime.redis.zscore(runtime.keys.track_due(), rid) <= now + DAY_S

    # the exit bar of h=1 closed, the entry bar and one more: only h=1 is scored
    write_folder(folder, {s: f.iloc[: DECISION_ROW + 2] for s, f in full.items()})
    evaluate_due(records, HORIZONS, now + 2 * DAY_S, retry_s=60)
    scored = records.results(rid)
    assert list(scored) == [1]
    assert scored[1]["score"]["top_k_excess"] == pytest.approx(
        excess_by_hand(rec.symbols(), rec.k, 1, full), abs=1e-12
    )
    assert scored[1]["score"]["flagged"] == []
    assert {"volume", "momentum", "returns"} <= set(scored[1])

    # the rest closes: every horizon scored, the record leaves the due index
    write_folder(folder, {s: f.iloc[: DECISION_ROW + 30] for s, f in full.items()})
    evaluate_due(records, HORIZONS, now + 4 * DAY_S, retry_s=60)
    scored = records.results(rid)
    assert sorted(scored) == HORIZONS
    for h in HORIZONS:
        assert scored[h]["score"]["top_k_excess"] == pytest.approx(
            excess_by_hand(rec.symbols(), rec.k, h, full), abs=1e-12
        )
    assert runtime.redis.zscore(runtime.keys.track_due(), rid) is None


def test_a_market_without_candles_after_t_is_counted_and_flagged_not_dropped(
    tmp_path, settings, local_service, queue, runtime, actor, records
):
    folder = tmp_path / "delisted"
    full = {s: series(s) for s in MARKETS}
    source = write_folder(folder, {s: f.iloc[:DECISION_ROW] for s, f in full.items()})
    done = run_to_completion(local_service, queue, runtime, csv_config(settings, source), actor)
    rid = f"{done.id}:{done.seq}"
    later = {s: f.iloc[: DECISION_ROW + 30] for s, f in full.items()}
    later["DOT/USDT"] = full["DOT/USDT"].iloc[:DECISION_ROW]  # delisted at t
    write_folder(folder, later)
    evaluate_due(records, HORIZONS, time.time(), retry_s=60)
    scored = records.results(rid)
    assert sorted(scored) == HORIZONS
    assert scored[1]["score"]["flagged"] == ["DOT/USDT"]
    rec = records.get(rid).record
    assert len(scored[1]["returns"]) == len(MARKETS)
    assert scored[1]["returns"][rec.symbols().index("DOT/USDT")] == 0.0  # its last close, flat


@pytest.mark.slow
def test_beat_sends_the_pass_on_its_own_queue_and_a_worker_of_it_scores_due_records(
    tmp_path, settings, local_service, queue, runtime, actor, records, worker_log_dir, llm_server
):
    from tasks.celery_app import STEP_QUEUE, TRACK_EVALUATE_TASK, TRACK_QUEUE, app
    from tests.conftest import wait_until, worker_env
    from tests.servers import Worker

    entry = app.conf.beat_schedule["track"]
    assert entry["task"] == TRACK_EVALUATE_TASK and entry["options"]["queue"] == TRACK_QUEUE
    assert TRACK_QUEUE != STEP_QUEUE
    full = {s: series(s) for s in MARKETS}
    source = write_folder(tmp_path / "beat", {s: f.iloc[: DECISION_ROW + 30] for s, f in full.items()})
    config = csv_config(settings, source, t_ms=decision_t_ms())
    done = run_to_completion(local_service, queue, runtime, config, actor)
    rid = f"{done.id}:{done.seq}"
    app.send_task(TRACK_EVALUATE_TASK)  # what beat sends: routed to the track queue
    assert runtime.redis.llen(TRACK_QUEUE) == 1
    track_worker = Worker(
        worker_env(llm_server), "track", concurrency=1, log_dir=worker_log_dir, queues=TRACK_QUEUE
    ).start()
    try:
        wait_until(
            lambda: sorted(records.results(rid)) == HORIZONS,
            timeout=30,
            message="the pass to score the record",
        )
    finally:
        track_worker.stop()
    assert runtime.redis.zscore(runtime.keys.track_due(), rid) is None


@pytest.mark.parametrize(
    "value, problem",
    [("1,x", "give whole numbers of bars"), ("0,4", "from 1 to 500"), ("", "at least one horizon")],
)
def test_a_bad_track_horizons_setting_says_what_is_wrong(value, problem):
    from pydantic import ValidationError

    from analysis.settings import Settings

    with pytest.raises(ValidationError, match=problem):
        Settings(track_horizons=value)


def test_the_pass_values_the_baselines_as_baseline_values_does_from_candles_closed_by_t():
    """The pass reduces each market once (MarketData) instead of re-reading its candles per
    record: the values must be those of the one rule, baselines.baseline_values."""
    from analysis.track.baselines import BASELINES, baseline_values
    from analysis.track.live_evaluate import MarketData
    from analysis.track.model import PickRecord, Ranked

    frames = {s: series(s).iloc[: DECISION_ROW + 40] for s in MARKETS}
    for row in (30, DECISION_ROW, DECISION_ROW + 20):
        record = PickRecord(
            t=decision_t_ms(row),
            timeframe="1h",
            source="csv",
            strategy="score",
            model=None,
            k=2,
            analysis_id="x",
            schedule_id=None,
            universe=tuple(Ranked(s, 0.0, i + 1) for i, s in enumerate(MARKETS)),
        )
        expected = baseline_values(record, frames, 3600_000)
        for name in BASELINES:
            got = {s: MarketData.of(frames[s]).baseline_at(name, record.t, 3600_000) for s in MARKETS}
            assert got == pytest.approx(expected[name], nan_ok=True), (row, name)
