"""Recovery from what production does to analyses: failing data sources and judges, killed and
stopped workers, late broker redeliveries, expired control keys, a restarting Redis, and steps
the watchdog cannot save (shown and rescued with `marketrank stuck` / `force-resume`).

The first tests run steps in this process on the session Redis; the rest use a private
append-only Redis with real workers and a real beat (`tests/stack.py`), flushed per test.
"""

import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.db.scripts.controls import PAUSE
from analysis.engine.step_runner import run_step, with_retries
from analysis.errors import DataUnavailable, JudgeUnavailable
from analysis.markets.registry import provider_from_spec
from analysis.models import RankingConfig, Status
from analysis.service import AnalysisService
from analysis.settings import Settings
from tests.conftest import wait_until
from tests.doubles.faulty_provider import held_pid, release_hold
from tests.helpers import (
    QueueDispatcher,
    assert_history_is_one_clean_chain,
    noop_config,
    ranking,
    wait_for_status,
)
from tests.stack import Stack

RECOVERY_ENV = {
    "LEASE_MS": "1500",
    "HEARTBEAT_MS": "300",
    "WATCHDOG_INTERVAL_S": "0.5",
    "WATCHDOG_GRACE_S": "1.5",
    "WATCHDOG_MAX_ATTEMPTS": "3",
    "STEP_RETRY_BACKOFF_S": "0.05",
    "VISIBILITY_TIMEOUT_S": "60",
    "TASK_TIME_LIMIT_S": "30",
}
DEMO_SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]


def score_config(data_source: str, markets: int = 4, **update) -> RankingConfig:
    return RankingConfig(
        markets=DEMO_SYMBOLS[:markets],
        timeframe="1h",
        strategy="score",
        top_k=2,
        target_confidence=0.8,
        data_source=data_source,
        window=500,
        batch_size=1,
    ).model_copy(update=update)


def events_of(rt, analysis_id: str) -> list[dict]:
    entries = rt.redis.xrange(rt.keys.events())
    found = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    return [e for e in found if e["id"] == analysis_id]


# --- bounded retries, then a pause with a reason ---------------------------------------------
def test_with_retries_backs_off_exponentially_and_gives_up_after_the_bound():
    sleeps, calls = [], []

    def flaky():
        calls.append(1)
        raise DataUnavailable("source down")

    with pytest.raises(DataUnavailable, match="source down"):
        with_retries(flaky, retries=3, backoff_s=0.5, sleep=sleeps.append)
    assert len(calls) == 4 and sleeps == [0.5, 1.0, 2.0]
    answers = iter([DataUnavailable("blip"), DataUnavailable("blip"), "candles"])

    def recovers():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    sleeps.clear()
    assert with_retries(recovers, retries=3, backoff_s=0.5, sleep=sleeps.append) == "candles"
    assert sleeps == [0.5, 1.0]


def test_with_retries_does_not_retry_what_retrying_cannot_fix():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        with_retries(broken, retries=3, backoff_s=0, sleep=lambda s: None)
    assert len(calls) == 1


def test_a_flaky_data_source_is_retried_and_the_analysis_ranks_as_without_faults(
    runtime, queue, local_service, actor
):
    spec = "faulty:error=0.5,seed=11:demo"
    gist = local_service.start(score_config(spec), actor)
    assert queue.drain(runtime)[-1] == "completed"
    assert provider_from_spec(spec).injected["error"] > 0
    reference = local_service.start(score_config("demo"), actor)
    queue.drain(runtime)
    done, clean = local_service.get(gist.id, actor), local_service.get(reference.id, actor)
    assert done.status == Status.COMPLETED and ranking(done) == ranking(clean)
    assert done.confidence == clean.confidence
    assert_history_is_one_clean_chain(runtime.store.history(gist.id), done.seq)


def test_a_data_source_that_keeps_failing_pauses_with_a_reason_and_resume_loses_nothing(
    runtime, queue, local_service, actor
):
    spec = "faulty:error=1,seed=12:demo"
    gist = local_service.start(score_config(spec), actor)
    assert queue.drain(runtime) == ["paused"]
    retries = runtime.settings.step_retries
    assert provider_from_spec(spec).injected["error"] == retries + 1  # bounded, then given up
    paused = local_service.get(gist.id, actor)
    assert paused.status == Status.PAUSED and paused.seq == -1
    assert paused.reason.startswith("the market-data source did not answer for candles BTC/USDT")
    assert any(
        f["id"] == gist.id and "did not answer" in f["reason"] for f in runtime.store.recent_failures()
    )
    assert [e["kind"] for e in events_of(runtime, gist.id)][-1] == "paused"
    assert events_of(runtime, gist.id)[-1]["reason"] == paused.reason

    provider_from_spec(spec).error_rate = 0.0  # the source is back
    assert local_service.resume(gist.id, actor).changed
    assert queue.drain(runtime)[-1] == "completed"
    assert_history_is_one_clean_chain(runtime.store.history(gist.id), local_service.get(gist.id, actor).seq)


def test_a_judge_failure_inside_a_step_pauses_with_a_reason_and_resume_completes(
    runtime, queue, local_service, actor, monkeypatch
):
    from analysis.engine import step_runner
    from tests.doubles.noop_strategy import NoopStrategy

    failures = iter([JudgeUnavailable("the LLM judge gave no valid answer after 4 tries")])

    class FailsOnceAtStepTwo(NoopStrategy):
        def step(self, inp):
            if inp.seq == 2:
                failure = next(failures, None)
                if failure is not None:
                    raise failure
            return super().step(inp)

    monkeypatch.setattr(step_runner, "get_strategy", lambda name: FailsOnceAtStepTwo(4))
    gist = local_service.start(noop_config(4), actor)
    assert queue.drain(runtime) == ["continue", "continue", "paused"]
    paused = local_service.get(gist.id, actor)
    assert (paused.status, paused.seq) == (Status.PAUSED, 1)
    assert paused.reason == "the LLM judge gave no valid answer after 4 tries"
    assert local_service.resume(gist.id, actor).changed
    assert queue.drain(runtime)[-1] == "completed"
    assert_history_is_one_clean_chain(runtime.store.history(gist.id), 4)


# --- the watchdog, driven pass by pass ---------------------------------------------------------
@pytest.mark.slow
def test_the_watchdog_re_enqueues_on_the_current_chain_then_gives_up_and_tells_admins(
    runtime, queue, local_service, actor
):
    from tasks.watchdog import watchdog_pass

    gist = local_service.start(noop_config(3), actor)
    queue.queue.clear()  # INIT's message was lost
    chain, grace = runtime.store.chain(gist.id), runtime.settings.watchdog_grace_s
    now = gist.last_progress_at
    kicks = QueueDispatcher()
    assert watchdog_pass(now + grace / 2, rt=runtime, dispatcher=kicks) is not None
    assert (gist.id, chain, 0) not in kicks.queue  # within the grace period: left alone
    for attempt in range(1, runtime.settings.watchdog_max_attempts + 1):
        now += grace + 1
        watchdog_pass(now, rt=runtime, dispatcher=kicks)
        assert kicks.queue.count((gist.id, chain, 0)) == attempt
    watchdog_pass(now + grace + 1, rt=runtime, dispatcher=kicks)
    parked = local_service.get(gist.id, actor)
    assert parked.status == Status.PAUSED
    assert (
        parked.reason
        == f"stuck: no progress after {runtime.settings.watchdog_max_attempts} recovery attempts"
    )
    assert events_of(runtime, gist.id)[-1]["kind"] == "stuck"  # the bot tells the admins
    assert any(
        f["id"] == gist.id and f["reason"].startswith("watchdog: gave_up")
        for f in runtime.store.recent_failures()
    )
    # A kicked step that finally arrives finds the analysis paused: nothing runs twice.
    assert run_step(runtime, gist.id, chain, 0).decision == "skip:paused"
    assert local_service.resume(gist.id, actor).changed
    assert queue.drain(runtime)[-1] == "completed"


def test_the_watchdog_parks_an_analysis_whose_control_key_expired_until_the_user_resumes(
    runtime, queue, local_service, actor
):
    from tasks.watchdog import watchdog_pass

    gist = local_service.start(noop_config(3), actor)
    queue.drain(runtime)
    gist = local_service.start(noop_config(3), actor)
    queue.queue.clear()
    runtime.redis.delete(runtime.keys.control(gist.id))  # its 24 h TTL ran out
    counts = watchdog_pass(time.time(), rt=runtime, dispatcher=QueueDispatcher())
    assert counts["expired"] >= 1
    parked = local_service.get(gist.id, actor)
    assert (parked.status, parked.reason) == (Status.PAUSED, "control expired")
    assert events_of(runtime, gist.id)[-1]["kind"] == "paused"
    assert events_of(runtime, gist.id)[-1]["reason"] == "control expired"
    assert local_service.resume(gist.id, actor).changed
    assert queue.drain(runtime)[-1] == "completed"


def test_a_late_delivery_does_not_rewrite_the_reason_of_a_paused_analysis(
    runtime, queue, local_service, actor
):
    gist = local_service.start(noop_config(3), actor)
    queue.drain(runtime)
    gist = local_service.start(noop_config(3), actor)
    chain = runtime.store.chain(gist.id)
    queue.queue.clear()
    local_service.pause(gist.id, actor)
    runtime.redis.delete(runtime.keys.control(gist.id))
    version = local_service.get(gist.id, actor).version
    assert run_step(runtime, gist.id, chain, 0).decision == "skip:expired"
    after = local_service.get(gist.id, actor)
    assert (after.reason, after.version) == ("paused by user", version)


def test_a_fenced_out_init_cannot_replace_the_snapshot_a_newer_attempt_committed(
    runtime, queue, local_service, actor
):
    from analysis.engine.step_runner import initialize

    gist = local_service.start(score_config("demo", markets=2), actor)
    chain, candles = runtime.store.chain(gist.id), runtime.keys.candles(gist.id)
    queue.queue.clear()
    _, zombie = runtime.store.begin_step(gist.id, chain, 0, "zombie", now=time.time())
    assert zombie is not None
    runtime.redis.delete(runtime.keys.lease(gist.id))  # its lease ran out while it stalled
    queue.enqueue_step(gist.id, chain, 0)  # the watchdog redoes INIT, the chain completes
    assert queue.drain(runtime)[-1] == "completed"
    saved = runtime.redis.hgetall(candles)
    # The zombie wakes and finishes INIT on candles that moved on meanwhile (a live source).
    moved_on = score_config("demo", markets=2, window=400)
    initialize(runtime, gist.id, moved_on, "zombie")
    assert runtime.redis.hgetall(candles) == saved
    assert "zombie" not in {e.attempt for e in runtime.store.history(gist.id)}


def test_registered_scripts_load_again_after_redis_forgets_them(runtime, queue, local_service, actor):
    gist = local_service.start(noop_config(2), actor)
    runtime.redis.script_flush()  # what a Redis restart does to the script cache
    assert local_service.pause(gist.id, actor).changed
    assert local_service.resume(gist.id, actor).changed
    assert queue.drain(runtime)[-1] == "completed"


def test_default_timings_recover_a_killed_workers_analysis_within_60_s():
    fields = Settings.model_fields
    defaults = Settings(
        **{
            name: fields[name].default
            for name in (
                "lease_ms",
                "heartbeat_ms",
                "watchdog_grace_s",
                "watchdog_interval_s",
                "watchdog_confirm_s",
            )
        }
    )
    assert defaults.recovery_bound_s == 46 < 60
    with pytest.raises(ValueError, match="HEARTBEAT_MS"):
        Settings(lease_ms=1000, heartbeat_ms=600)


# --- real workers, real beat, a private append-only Redis --------------------------------------
class NullDispatcher:
    """Loses every step message, like a broker that dropped it."""

    def enqueue_step(self, analysis_id, chain, seq):
        pass


@pytest.fixture(scope="module")
def stack():
    s = Stack(RECOVERY_ENV, name="recovery")
    yield s
    s.close()


@pytest.fixture
def fresh(stack):
    """The stack with an empty Redis; the test's workers and beat are stopped afterwards."""
    stack.runtime.redis.flushall()
    yield stack
    stack.stop_beat()
    for slot in list(stack.workers):
        stack.kill_worker(slot)


def unacked_task_ids(stack) -> list[str]:
    rows = stack.runtime.redis.hvals("unacked")
    return [json.loads(row)[0]["headers"]["id"] for row in rows]


def restore_unacked_messages(stack) -> None:
    """What a worker's periodic sweep does once VISIBILITY_TIMEOUT_S has passed: unacknowledged
    messages go back to the queue (here with a zero timeout, so the test need not wait a minute)."""
    from kombu import Connection

    with Connection(stack.settings.redis_url, transport_options={"visibility_timeout": 0}) as conn:
        conn.default_channel.qos.restore_visible(num=1000, interval=1)


def task_decisions(worker, task_id: str) -> list[str]:
    text = worker.log_path.read_text()
    marker = f"[{task_id}] succeeded in "
    return [line.split("'decision': '")[1].split("'")[0] for line in text.splitlines() if marker in line]


@pytest.mark.e2e
def test_a_worker_killed_mid_step_is_recovered_by_the_watchdog_and_its_late_redelivery_is_a_no_op(
    fresh, actor
):
    store = fresh.runtime.store
    fresh.start_worker(1)
    fresh.start_beat()
    # INIT's first data call blocks until released (here never): the kill lands inside it.
    gist = fresh.service.start(score_config("faulty:hold=1:demo"), actor)
    wait_until(lambda: held_pid(fresh.runtime.redis), message="INIT held in its data call")
    attempt = store.lease_holder(gist.id)
    assert attempt is not None
    fresh.start_worker(2)  # ready before the kill: the bound below is the watchdog's, not a boot's
    fresh.kill_worker(1)
    killed_at = time.time()
    lost = unacked_task_ids(fresh)
    assert lost, "the killed worker's message waits unacknowledged for the visibility timeout"

    done = wait_for_status(fresh.service, gist.id, actor, ["COMPLETED"], timeout=60)
    history = store.history(gist.id)
    assert_history_is_one_clean_chain(history, done.seq)
    assert attempt not in {e.attempt for e in history}
    init_duration = history[0].finished_at - history[0].started_at
    assert history[0].finished_at - killed_at < fresh.settings.recovery_bound_s + init_duration + 2

    worker = fresh.workers[2]

    def redelivered() -> list[str]:
        # The broker redelivers the killed worker's task, late. kombu skips a restore while a
        # worker's own periodic restore holds its mutex, so ask again until the task has run.
        restore_unacked_messages(fresh)
        return task_decisions(worker, lost[0])

    decisions = wait_until(redelivered, interval=1.0, message="the redelivery")
    assert decisions[0].startswith("skip:")
    after = store.load(gist.id)
    assert (after.version, after.status) == (done.version, Status.COMPLETED)
    assert store.history(gist.id) == history


def pool_pids_running(stack, worker) -> set[int]:
    """The pool processes the worker's main process knows have accepted a task: only a task whose
    acceptance reached the main process is marked lost (and requeued) when its process dies."""
    hostname = f"{worker.name}@{socket.gethostname()}"
    replies = stack.app.control.inspect(destination=[hostname], timeout=1.0).active() or {}
    return {request["worker_pid"] for request in replies.get(hostname, []) if request.get("worker_pid")}


@pytest.mark.e2e
def test_pool_processes_killed_mid_step_are_requeued_and_nothing_runs_twice(fresh, actor):
    store = fresh.runtime.store
    worker = fresh.start_worker(1)
    fresh.start_beat()
    # INIT's first data call blocks until released (here never): the kill lands inside it.
    gist = fresh.service.start(score_config("faulty:hold=1:demo"), actor)
    pid = wait_until(lambda: held_pid(fresh.runtime.redis), message="INIT held in its data call")
    attempt = store.lease_holder(gist.id)
    assert attempt is not None
    wait_until(
        lambda: pid in pool_pids_running(fresh, worker),
        message="the main process to see INIT accepted by the held process",
    )
    assert fresh.kill_pool_children(1) == 2
    done = wait_for_status(fresh.service, gist.id, actor, ["COMPLETED"], timeout=60)
    history = store.history(gist.id)
    assert_history_is_one_clean_chain(history, done.seq)
    assert attempt not in {e.attempt for e in history}
    # Celery's main process reports the lost pool process and requeues its step in its own
    # time: usually within a second, but on a loaded host (a fresh CI clone, once) only after
    # the watchdog had already completed the analysis.

    def first_init_requeued() -> bool:
        log = worker.log_path.read_text()
        first = log.split("Task marketrank.init[", 1)[1].split("]", 1)[0]
        return "WorkerLostError" in log and log.count(f"Task marketrank.init[{first}] received") >= 2

    wait_until(first_init_requeued, timeout=30, message="the killed pool process's INIT requeued by Celery")
    log = worker.log_path.read_text()
    first_init = log.split("Task marketrank.init[", 1)[1].split("]", 1)[0]
    assert log.count(f"Task marketrank.init[{first_init}] received") == 2  # requeued once


@pytest.mark.e2e
def test_a_worker_frozen_past_its_lease_wakes_as_a_zombie_and_is_fenced_out(fresh, actor):
    store = fresh.runtime.store
    frozen = fresh.start_worker(1)
    fresh.start_beat()
    # INIT's first data call blocks until released: it is in flight when the worker freezes.
    gist = fresh.service.start(score_config("faulty:hold=1:demo"), actor)
    wait_until(lambda: held_pid(fresh.runtime.redis), message="INIT held in its data call")
    zombie = store.lease_holder(gist.id)
    assert zombie is not None
    snapshot_key = fresh.runtime.keys.candles(gist.id)
    fresh.freeze_worker(1, seconds=600)  # SIGSTOP: the lease runs out while it sleeps
    fresh.start_worker(2)
    wait_until(lambda: store.load(gist.id).seq >= 2, timeout=30, message="INIT redone elsewhere")
    snapshot = fresh.runtime.redis.hgetall(snapshot_key)
    release_hold(fresh.runtime.redis)
    fresh.thaw_all()  # SIGCONT: the zombie finishes its INIT and tries to save and commit it
    wait_until(
        lambda: f"INIT attempt {zombie} lost its lease" in frozen.log_path.read_text(),
        message="the zombie to finish",
    )
    wait_until(lambda: "commit: lost_lease" in frozen.log_path.read_text(), message="the zombie's commit")
    done = wait_for_status(fresh.service, gist.id, actor, ["COMPLETED"], timeout=60)
    history = store.history(gist.id)
    assert_history_is_one_clean_chain(history, done.seq)
    assert zombie not in {e.attempt for e in history}
    assert fresh.runtime.redis.hgetall(snapshot_key) == snapshot


@pytest.mark.e2e
def test_sigterm_lets_the_step_in_flight_finish_and_commit(fresh, actor):
    store = fresh.runtime.store
    worker = fresh.start_worker(1)
    gist = fresh.service.start(score_config("faulty:slow=1,delay=0.5:demo"), actor)
    attempt = wait_until(lambda: store.lease_holder(gist.id), message="INIT in flight")
    fresh.stop_worker(1, timeout=30)  # SIGTERM: warm shutdown
    exited_at = time.time()
    assert worker.process.returncode == 0
    history = store.history(gist.id)
    assert [(e.seq, e.attempt) for e in history] == [(0, attempt)]
    assert history[0].worker.startswith(worker.name) and history[0].finished_at <= exited_at
    assert store.load(gist.id).status == Status.RUNNING  # step 1 waits in the queue
    fresh.start_worker(2)  # no watchdog here: the queued step alone carries the chain on
    done = wait_for_status(fresh.service, gist.id, actor, ["COMPLETED"], timeout=60)
    assert_history_is_one_clean_chain(store.history(gist.id), done.seq)


@pytest.mark.e2e
def test_an_expired_control_key_is_parked_by_the_watchdog_or_the_next_step_and_resume_completes(fresh, actor):
    store, keys, r = fresh.runtime.store, fresh.runtime.keys, fresh.runtime.redis
    fresh.start_worker(1)
    fresh.start_beat()
    # The watchdog path: its message was lost, then its control key expired.
    lost = AnalysisService(store, NullDispatcher()).start(noop_config(3), actor)
    r.delete(keys.control(lost.id))
    parked = wait_for_status(fresh.service, lost.id, actor, ["PAUSED"], timeout=30)
    assert parked.reason == "control expired"
    # The watchdog records the failure for admins just after the script parked the analysis.
    wait_until(
        lambda: any(
            f["id"] == lost.id and f["reason"].startswith("watchdog: expired")
            for f in store.recent_failures()
        ),
        timeout=10,
        message="the failure record",
    )
    assert fresh.service.resume(lost.id, actor).changed
    done = wait_for_status(fresh.service, lost.id, actor, ["COMPLETED"], timeout=30)
    assert_history_is_one_clean_chain(store.history(lost.id), done.seq)
    # The step path: the control key of a running chain expires between two steps.
    gist = fresh.service.start(noop_config(200), actor)
    wait_until(lambda: store.load(gist.id).seq >= 5, message="a few steps")
    r.delete(keys.control(gist.id))
    parked = wait_for_status(fresh.service, gist.id, actor, ["PAUSED"], timeout=30)
    assert parked.reason == "control expired"
    assert fresh.service.resume(gist.id, actor).changed
    wait_for_completion(store, gist.id)
    assert_history_is_one_clean_chain(store.history(gist.id), 200)


@pytest.mark.e2e
def test_analyses_carry_on_after_redis_restarts_and_workers_and_beat_reconnect(fresh, actor):
    store = fresh.runtime.store
    worker = fresh.start_worker(1)
    fresh.start_beat()
    gist = fresh.service.start(noop_config(200), actor)
    wait_until(lambda: store.load(gist.id).seq >= 20, message="a few steps")
    fresh.restart_redis(down_s=1.0)
    pause_sha = hashlib.sha1(PAUSE.source.encode()).hexdigest()
    assert not fresh.runtime.redis.script_exists(pause_sha)[0]
    done = wait_for_completion(store, gist.id)
    assert_history_is_one_clean_chain(store.history(gist.id), 200)
    assert done.seq == 200
    # Beat and worker came back too: an analysis whose message is lost is rescued by the watchdog.
    lost = AnalysisService(store, NullDispatcher()).start(noop_config(3), actor)
    rescued = wait_for_status(fresh.service, lost.id, actor, ["COMPLETED"], timeout=30)
    assert rescued.seq == 3
    # The same worker process rode it out (kombu 5.7 made it exit: see tasks/celery_app.py).
    assert worker.process.poll() is None
    assert "Unrecoverable error" not in worker.log_path.read_text()


def wait_for_completion(store, analysis_id: str, stall_s: float = 30):
    """Wait while the analysis makes progress; fail if it stops moving for `stall_s` (stuck),
    however slow a loaded machine makes each step."""
    last, since = None, time.monotonic()
    while True:
        gist = store.load(analysis_id)
        if gist.status == Status.COMPLETED:
            return gist
        if gist.version != last:
            last, since = gist.version, time.monotonic()
        elif time.monotonic() - since > stall_s:
            raise AssertionError(
                f"{analysis_id} stuck for {stall_s} s: {gist.status} at seq {gist.seq} ({gist.reason})"
            )
        time.sleep(0.1)


def marketrank(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("marketrank")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.e2e
def test_marketrank_stuck_shows_what_the_watchdog_could_not_save_and_force_resume_rescues_it(fresh, actor):
    from tasks.watchdog import watchdog_pass

    store, settings = fresh.runtime.store, fresh.settings
    env = {**fresh.env, "WATCHDOG_GRACE_S": "0.2"}
    lost = AnalysisService(store, NullDispatcher()).start(noop_config(3), actor)
    time.sleep(0.3)
    shown = marketrank(env, "stuck")
    assert shown.returncode == 0 and f"{lost.id}  PENDING   seq -1  no progress" in shown.stdout

    now, kicks = lost.last_progress_at, QueueDispatcher()  # kicks that never get anywhere
    for _ in range(settings.watchdog_max_attempts + 1):
        now += settings.watchdog_grace_s + 1
        watchdog_pass(now, rt=fresh.runtime, dispatcher=kicks)
    assert len(kicks.queue) == settings.watchdog_max_attempts
    shown = marketrank(env, "stuck")
    assert f"{lost.id}  PAUSED    seq -1  stuck: no progress after 3 recovery attempts" in shown.stdout

    fresh.start_worker(1)
    rescued = marketrank(env, "force-resume", lost.id)
    assert rescued.returncode == 0 and rescued.stdout.strip() == "Force-resumed from step 0."
    done = wait_for_status(fresh.service, lost.id, actor, ["COMPLETED"], timeout=30)
    assert_history_is_one_clean_chain(store.history(done.id), 3)
    assert lost.id not in marketrank(env, "stuck").stdout
    again = marketrank(env, "force-resume", lost.id)
    assert again.returncode == 1 and "already completed" in again.stdout


@pytest.mark.e2e
def test_a_step_that_kills_its_worker_every_time_is_given_up_and_admins_are_told(fresh, actor):
    store = fresh.runtime.store
    fresh.start_worker(1)
    fresh.start_beat()
    gist = fresh.service.start(score_config("faulty:crash=1:demo"), actor)  # a poison step
    parked = wait_for_status(fresh.service, gist.id, actor, ["PAUSED"], timeout=90)
    assert parked.reason.startswith("stuck: no progress after")
    assert events_of(fresh.runtime, gist.id)[-1]["kind"] == "stuck"
    assert any(f["id"] == gist.id for f in store.recent_failures())
    shown = marketrank(fresh.env, "stuck")
    assert f"{gist.id}  PAUSED" in shown.stdout and "stuck: no progress" in shown.stdout
    assert marketrank(fresh.env, "cancel", gist.id).stdout.strip() == "Cancelled."
