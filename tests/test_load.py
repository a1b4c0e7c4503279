"""Holding under load (issue 11): a backlog is not a crash, and the watchdog has its own queue.

A small `make bench-load`: real workers, a real beat and the watchdog's own worker over a private
Redis, the real openai client against a local judge that takes its time, and timings so fast
that steps wait in the queue longer than the watchdog's grace period.
"""

import time

import pytest

from analysis.models import Status
from analysis.settings import Settings
from tests.conftest import wait_until
from tests.helpers import QueueDispatcher, noop_config
from tests.llm_load import LOAD_TIMINGS, run_llm_load
from tests.servers import RedisServer, Worker
from tests.stack import Stack


@pytest.mark.e2e
def test_a_queue_longer_than_the_grace_pauses_no_analysis_and_re_enqueues_nothing(tmp_path):
    grace = 1.0
    load = run_llm_load(
        analyses=5, latency_s=1.5, grace_s=grace, attempts=2, timeout_s=240, log_dir=str(tmp_path)
    )
    assert load.longest_wait_s > grace  # the backlog really outlasted the grace period
    assert load.watchdog_queued_passes > 0  # and the watchdog looked at it meanwhile
    assert load.paused == []
    assert load.completed == 5
    assert load.clean_chains  # every sequence committed once, in order, no overlap
    assert load.watchdog_kicks == 0  # nothing was lost, so nothing was re-enqueued


def test_a_step_waiting_in_the_broker_is_left_alone_and_a_lost_one_is_re_enqueued_once(runtime, actor):
    """The broker is a private Celery app's (db 1 of the test Redis), which no worker consumes:
    a step sent there waits as long as the test likes."""
    from analysis.service import AnalysisService
    from tasks.celery_app import STEP_QUEUE, make_celery
    from tasks.dispatcher import CeleryDispatcher
    from tasks.ops import BrokerOps
    from tasks.watchdog import watchdog_pass

    settings = runtime.settings
    app = make_celery(Settings(redis_url=settings.redis_url.rsplit("/", 1)[0] + "/1"))
    ops, dispatcher = BrokerOps(app), CeleryDispatcher(app)
    ops.broker.flushdb()
    runtime.redis.delete(runtime.keys.live())  # only this test's analysis is live
    service = AnalysisService(
        runtime.store, dispatcher, pending_steps=ops.pending_steps_within(settings.watchdog_grace_s)
    )
    gist = service.start(noop_config(3), actor)
    now, grace = gist.created_at, settings.watchdog_grace_s
    service.clock = lambda: now  # /stuck looks at the same moment as the watchdog's passes
    for _ in range(settings.watchdog_max_attempts + 3):  # a long wait in the queue
        now += grace + 1
        counts = watchdog_pass(
            now, rt=runtime, dispatcher=dispatcher, pending_steps=ops.pending_steps_within(grace)
        )
        assert counts["kick"] == 0 and counts["queued"] >= 1
    assert service.get(gist.id, actor).status == Status.PENDING
    assert ops.broker.llen(STEP_QUEUE) == 1
    assert gist.id not in {g.id for g in service.stuck()}
    ops.broker.delete(STEP_QUEUE)  # the message is lost (a Redis that forgot it)
    assert gist.id in {g.id for g in service.stuck()}
    now += grace + 1
    assert (
        watchdog_pass(now, rt=runtime, dispatcher=dispatcher, pending_steps=ops.pending_steps_within(grace))[
            "kick"
        ]
        >= 1
    )
    for _ in range(3):  # the re-enqueued step waits again: not kicked twice
        now += grace + 1
        watchdog_pass(now, rt=runtime, dispatcher=dispatcher, pending_steps=ops.pending_steps_within(grace))
    assert ops.broker.llen(STEP_QUEUE) == 1
    assert service.get(gist.id, actor).status == Status.PENDING
    app.close()


def test_the_watchdog_watches_analyses_beyond_the_newest_thousand(runtime, local_service, queue):
    """The oldest of 1,001 live analyses lost its step: the watchdog finds it all the same."""
    from analysis.service import Actor
    from tasks.watchdog import watchdog_pass

    runtime.redis.delete(runtime.keys.live())  # only this test's analyses are live
    ids = [local_service.start(noop_config(2), Actor(f"many-{i}")).id for i in range(1001)]
    lost = ids[0]
    pending = {}
    for analysis_id, chain, seq in queue.queue:
        pending.setdefault(analysis_id, []).append(f"{chain}:{seq}")
    del pending[lost]
    kicks = QueueDispatcher()
    counts = watchdog_pass(
        time.time() + runtime.settings.watchdog_grace_s + 1,
        rt=runtime,
        dispatcher=kicks,
        pending_steps=lambda: pending,
    )
    assert [k[0] for k in kicks.queue] == [lost]
    assert counts["queued"] == 1000
    runtime.redis.delete(runtime.keys.live())


def test_a_step_in_the_brokers_hands_for_a_moment_is_looked_at_again_not_re_enqueued(
    runtime, local_service, queue
):
    """Between the queue and the unacknowledged set a delivery is, for a moment, in neither: a
    pass that reads the broker then must look again before it calls the step lost."""
    from analysis.service import Actor
    from tasks.watchdog import watchdog_pass

    runtime.redis.delete(runtime.keys.live())  # only this test's analysis is live
    gist = local_service.start(noop_config(2), Actor("in-transit"))
    ((analysis_id, chain, seq),) = [m for m in queue.queue if m[0] == gist.id]
    reads = []

    def broker_in_transit():  # the first read misses the message; the next one sees it delivered
        reads.append(time.monotonic())
        return {} if len(reads) == 1 else {analysis_id: [f"{chain}:{seq}"]}

    later = time.time() + runtime.settings.watchdog_grace_s + 1
    kicks = QueueDispatcher()
    counts = watchdog_pass(later, rt=runtime, dispatcher=kicks, pending_steps=broker_in_transit)
    assert (counts["kick"], counts["queued"], kicks.queue) == (0, 1, [])
    assert reads[1] - reads[0] >= runtime.settings.watchdog_confirm_s
    # Missing from both reads, it is lost: re-enqueued once.
    counts = watchdog_pass(later, rt=runtime, dispatcher=kicks, pending_steps=lambda: {})
    assert counts["kick"] == 1 and [k[0] for k in kicks.queue] == [analysis_id]
    runtime.redis.delete(runtime.keys.live())


def test_the_chaos_report_counts_the_watchdogs_re_enqueues_from_its_own_log(
    runtime, local_service, caplog, tmp_path
):
    """`make chaos` reports recoveries from the workers' logs: the watchdog's line for a lost
    step, as its worker writes it, must be what the report counts."""
    import logging

    from analysis.logging_setup import FORMAT
    from analysis.service import Actor
    from tasks.watchdog import watchdog_pass
    from tests.worker_logs import scan_worker_logs

    runtime.redis.delete(runtime.keys.live())  # only this test's analysis is live
    gist = local_service.start(noop_config(2), Actor("chaos-scan"))
    with caplog.at_level(logging.INFO, logger="tasks.watchdog"):
        counts = watchdog_pass(
            time.time() + runtime.settings.watchdog_grace_s + 1,
            rt=runtime,
            dispatcher=QueueDispatcher(),
            pending_steps=lambda: {},
        )
    assert counts["kick"] == 1
    log = tmp_path / "watchdog.log"
    log.write_text("".join(logging.Formatter(FORMAT).format(r) + "\n" for r in caplog.records))
    stats = scan_worker_logs([log])
    assert stats.kicks == 1 and list(stats.kicks_at) == [gist.id]
    runtime.redis.delete(runtime.keys.live())


def test_a_watchdog_pass_while_redis_is_away_is_one_warning_not_a_failed_task(caplog):
    """Redis restarting under a pass: nothing can be judged, so the pass says so in one line and
    the next pass, an interval on, looks again (no traceback in the watchdog's log)."""
    import logging

    import redis

    from analysis.engine.runtime import Runtime
    from tasks.watchdog import watchdog_pass
    from tests.servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    rt = Runtime(Settings(redis_url=url))
    # The runtime's client retries for about half a minute before an error reaches the pass (and
    # a broken pooled connection fails at once, as in the chaos run); a client without retries
    # brings the same error here at once.
    rt.__dict__["redis"] = redis.Redis.from_url(url)
    with caplog.at_level(logging.WARNING, logger="tasks.watchdog"):
        counts = watchdog_pass(time.time(), rt=rt, dispatcher=QueueDispatcher(), pending_steps=lambda: {})
    assert counts["redis_unreachable"] == 1 and counts["kick"] == 0
    (record,) = caplog.records
    assert "Redis cannot be reached" in record.getMessage() and record.exc_info is None


@pytest.fixture
def stack(tmp_path):
    s = Stack(LOAD_TIMINGS, name="wdq", log_dir=tmp_path, appendonly=False)
    yield s
    s.close()


@pytest.mark.e2e
def test_watchdog_passes_nobody_took_expire_instead_of_piling_up(stack):
    from tasks.celery_app import WATCHDOG_QUEUE

    entry = stack.app.conf.beat_schedule["watchdog"]
    for _ in range(5):  # beat sent them while the watchdog worker was down
        stack.app.send_task(entry["task"], **entry["options"])
    assert stack.runtime.redis.llen(WATCHDOG_QUEUE) == 5
    time.sleep(float(entry["options"]["expires"]) + 0.5)
    steps_only = stack.start_worker(1)  # a step worker does not take them
    # It runs an analysis meanwhile: it read its queue several times, never the watchdog's.
    from analysis.service import Actor

    gist = stack.service.start(noop_config(3), Actor("wdq-test"))
    wait_until(
        lambda: stack.runtime.store.load(gist.id).status == Status.COMPLETED,
        timeout=30,
        message="the step worker to run an analysis",
    )
    assert stack.runtime.redis.llen(WATCHDOG_QUEUE) == 5
    assert b"marketrank.watchdog" not in steps_only.log_path.read_bytes().split(b"ready.", 1)[1]
    watchdog = Worker(
        stack.env, "wdq-watchdog", concurrency=1, log_dir=str(stack.log_dir), queues=WATCHDOG_QUEUE
    ).start()
    try:
        wait_until(
            lambda: watchdog.log_path.read_text().count("Discarding revoked task") >= 5,
            timeout=20,
            message="the watchdog worker to discard the five passes",
        )
        log = watchdog.log_path.read_text()
        assert log.count("Discarding revoked task") == 5  # expired, not run
        assert stack.runtime.redis.llen(WATCHDOG_QUEUE) == 0
        assert "succeeded" not in log.split("ready.", 1)[1]
    finally:
        watchdog.stop()
