"""Whole analyses through a real Celery worker and a real Redis."""

import time

import pytest

from analysis.models import Status
from tests.conftest import wait_until
from tests.helpers import (
    all_at_once,
    assert_history_is_one_clean_chain,
    noop_config,
    ranking,
    wait_for_idle_broker,
    wait_for_status,
)

pytestmark = pytest.mark.usefixtures("worker")


@pytest.mark.slow
def test_a_score_analysis_runs_from_start_to_completion(service, factory, actor):
    config = factory.create_ranking_config(markets=30, top_k=10)
    gist = service.start(config, actor)
    done = wait_for_status(service, gist.id, actor, ["COMPLETED"])
    assert [item.rank for item in done.result] == list(range(1, 11))
    scores = [item.score for item in done.result]
    assert scores == sorted(scores, reverse=True)
    assert {"close", "rsi_14", "macd_hist", "bb_pctb", "atr_14", "adx_14"} <= set(done.result[0].indicators)
    assert 0 < done.confidence <= 1 and done.progress == 1.0 and done.demo
    # 30 markets in batches of 8: INIT, 4 scoring steps, 1 ordering step.
    assert_history_is_one_clean_chain(service.store.history(gist.id), 5)


@pytest.mark.slow
def test_pause_in_the_middle_then_resume_gives_the_uninterrupted_ranking(service, factory, actor):
    config = factory.create_ranking_config(markets=24, top_k=5).model_copy(update={"batch_size": 1})
    reference = service.start(config, actor)
    reference_done = wait_for_status(service, reference.id, actor, ["COMPLETED"])

    gist = service.start(config, actor)
    wait_until(lambda: service.get(gist.id, actor).seq >= 3, message="a few steps")
    assert service.pause(gist.id, actor).changed
    wait_for_status(service, gist.id, actor, ["PAUSED"])
    # The step in flight may still commit; after that, nothing moves.
    wait_until(lambda: service.store.lease_holder(gist.id) is None, message="the step in flight")
    paused = service.get(gist.id, actor)
    wait_for_idle_broker()  # deliveries still queued or running find it paused and do nothing
    still = service.get(gist.id, actor)
    assert still.status == Status.PAUSED and still.seq == paused.seq < 25

    assert service.resume(gist.id, actor).changed
    done = wait_for_status(service, gist.id, actor, ["COMPLETED"])
    assert ranking(done) == ranking(reference_done)
    assert done.confidence == reference_done.confidence
    history = service.store.history(gist.id)
    assert_history_is_one_clean_chain(history, 25)
    assert len({entry.chain for entry in history}) == 2  # the resume minted one new chain


def test_twenty_concurrent_resumes_continue_exactly_one_chain(service, actor):
    gist = service.start(noop_config(60), actor)
    wait_until(lambda: service.get(gist.id, actor).seq >= 5, message="a few steps")
    service.pause(gist.id, actor)
    wait_until(lambda: service.store.lease_holder(gist.id) is None, message="the step to finish")
    results = all_at_once(20, lambda: service.resume(gist.id, actor))
    assert sum(r.changed for r in results) == 1
    wait_for_status(service, gist.id, actor, ["COMPLETED"])
    history = service.store.history(gist.id)
    assert_history_is_one_clean_chain(history, 60)
    assert len({entry.chain for entry in history}) == 2


def test_refine_after_completion_continues_toward_the_higher_target(service, factory, actor):
    config = factory.create_ranking_config(markets=12, top_k=3)
    gist = service.start(config, actor)
    done = wait_for_status(service, gist.id, actor, ["COMPLETED"])
    result = service.refine(gist.id, actor, generation=done.refine_gen)
    duplicate = service.refine(gist.id, actor, generation=done.refine_gen)
    assert result.changed and not duplicate.changed
    refined = wait_for_status(service, gist.id, actor, ["COMPLETED"])
    assert refined.target == pytest.approx(done.target + 0.05)
    assert refined.seq > done.seq
    # Refine reports the steadiest top K over the same moments: never a lower confidence.
    assert refined.state["ranking"] == "steadiest" and refined.state["views"] == done.state["views"]
    assert refined.confidence >= done.confidence
    assert_history_is_one_clean_chain(service.store.history(gist.id), refined.seq)


def test_force_resume_while_a_zombie_holds_the_lease_completes_once(service, actor):
    admin = type(actor)("admin", is_admin=True)
    gist = service.start(noop_config(30), actor)
    wait_until(lambda: service.get(gist.id, actor).seq >= 3, message="a few steps")
    service.pause(gist.id, actor)
    # No step in flight and none waiting in the broker: the next step dispatched before the pause
    # would otherwise begin once the test sets control back to running, and take the lease first.
    wait_for_idle_broker()
    assert service.store.lease_holder(gist.id) is None
    seq = service.get(gist.id, actor).seq
    chain = service.store.chain(gist.id)
    # A zombie attempt of the next step takes the lease and never finishes.
    service.store.redis.hset(service.store.keys.control(gist.id), "wanted", "running")
    _, zombie = service.store.begin_step(gist.id, chain, seq + 1, "zombie", now=time.time())
    assert zombie is not None
    assert service.force_resume(gist.id, admin).changed
    wait_for_status(service, gist.id, actor, ["COMPLETED"])
    history = service.store.history(gist.id)
    assert_history_is_one_clean_chain(history, 30)
    assert "zombie" not in {entry.attempt for entry in history}
    assert service.get(gist.id, actor).status == Status.COMPLETED


@pytest.mark.slow
def test_a_score_analysis_on_the_real_binance_candles(service, runtime, actor, shared_data_dir):
    from analysis.config_factory import RankingConfigFactory
    from analysis.markets.csv_dir import CsvDirProvider

    factory = RankingConfigFactory(runtime.settings, CsvDirProvider(shared_data_dir))
    config = factory.create_ranking_config(markets=40, top_k=10)
    gist = service.start(config, actor)
    done = wait_for_status(service, gist.id, actor, ["COMPLETED"])
    assert not done.demo and len(done.result) == 10
    assert {item.symbol for item in done.result} <= set(config.markets)
    btc = service.store.redis.hget(service.store.keys.candles(gist.id), "BTC/USDT")
    assert btc is not None  # the snapshot holds the real candles the steps ranked
