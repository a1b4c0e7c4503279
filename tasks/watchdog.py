"""The watchdog (Celery beat, on its own queue `marketrank.watchdog` consumed by a worker no step
occupies): applies the one rule for stuck (`analysis.engine.watch`) to every live analysis,
re-enqueues the next step of those whose step is lost, gives up after bounded attempts."""

import logging
import time

import redis

from analysis.db.scripts.watch import WatchdogCheck
from analysis.engine.runtime import Runtime
from analysis.engine.watch import PendingSteps, check_live
from analysis.errors import first_line
from analysis.service import StepDispatcher
from tasks.celery_app import app
from tasks.dispatcher import CeleryDispatcher
from tasks.runtime import get_runtime

logger = logging.getLogger(__name__)


def watchdog_pass(
    now: float | None = None,
    *,
    rt: Runtime | None = None,
    dispatcher: StepDispatcher | None = None,
    pending_steps: PendingSteps | None = None,
) -> dict[str, int]:
    """One pass over every live analysis; answers how many were kicked, given up, expired, and
    left alone because their step waits in the broker ('queued'). Time, the runtime, the
    dispatcher and the broker view are parameters so tests can drive a pass."""
    rt = get_runtime() if rt is None else rt
    dispatcher = CeleryDispatcher() if dispatcher is None else dispatcher
    if pending_steps is None:
        from tasks.ops import default_ops

        pending_steps = default_ops().pending_steps_within(rt.settings.watchdog_grace_s)
    now = time.time() if now is None else now
    counted = (WatchdogCheck.KICK, WatchdogCheck.GAVE_UP, WatchdogCheck.EXPIRED, WatchdogCheck.QUEUED)
    counts = {code.value: 0 for code in counted}
    try:
        verdicts = check_live(rt.store, pending_steps, now, confirm_s=rt.settings.watchdog_confirm_s)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Redis restarting or away: nothing can be judged; the next pass (one interval on) will.
        logger.warning(
            "watchdog pass skipped: Redis cannot be reached (%s); the next pass retries", first_line(exc)
        )
        return {**counts, "redis_unreachable": 1}
    for verdict in verdicts:
        analysis_id, answer = verdict.analysis_id, verdict.answer
        if answer.code == WatchdogCheck.KICK:
            seq, chain, attempts = answer.values
            logger.warning(
                "[%s chain=%s seq=%s] step lost (no lease, not in the broker): re-enqueued (attempt %s)",
                analysis_id,
                chain[:8],
                seq,
                attempts,
            )
            try:
                dispatcher.enqueue_step(analysis_id, chain, int(seq))
                rt.redis.hincrby(rt.keys.metrics(), "watchdog_reenqueues", 1)
            except Exception:  # the broker is away: the kick is counted, the next pass retries
                logger.exception("[%s] watchdog could not re-enqueue", analysis_id)
        elif answer.code in (WatchdogCheck.GAVE_UP, WatchdogCheck.EXPIRED):
            said = " ".join([answer.code.value, *answer.values])
            logger.error("[%s] watchdog %s", analysis_id, said)
            rt.store.record_failure(analysis_id, -1, f"watchdog: {said}", now=now)
        if answer.code in counted:
            counts[answer.code.value] += 1
    return counts


# A pass every WATCHDOG_INTERVAL_S would crowd Flower's task list with rows that did nothing, so
# the task sends no events of its own (and beat sends no task-sent event, tasks/celery_app.py);
# a pass that kicked, gave up or parked something announces itself with the usual three events.
# Routed to WATCHDOG_QUEUE by task_routes (tasks/celery_app.py).
@app.task(name="marketrank.watchdog", bind=True, send_events=False)
def watchdog(self) -> dict[str, int]:
    started = time.monotonic()
    counts = watchdog_pass()
    if any(n for what, n in counts.items() if what != "queued"):  # did something
        show_in_flower(self, counts, time.monotonic() - started)
    return counts


def show_in_flower(task, result: dict[str, int], runtime: float) -> None:
    """The task-received, -started and -succeeded events a worker sends for a task that sends
    events (Flower and `celery events` build their task rows from these)."""
    try:
        task.send_event(
            "task-received",
            name=task.name,
            args="()",
            kwargs="{}",
            retries=0,
            root_id=task.request.id,
            parent_id=None,
            eta=None,
            expires=None,
        )
        task.send_event("task-started")
        task.send_event("task-succeeded", result=repr(result), runtime=runtime)
    except Exception:  # monitoring only: never fail the pass for it
        logger.warning("watchdog pass could not send its monitoring events", exc_info=True)
