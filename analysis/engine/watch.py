"""The one rule for "stuck", over every live analysis: the watchdog acts on it, `/stuck` shows it.

The rule itself is `stuck_rule` in analysis/db/scripts/prologue.py, used by `WATCHDOG_CHECK`
(acting) and by the read-only `STUCK_CHECK` (analysis/db/scripts/watch.py). An analysis that should
run but holds no lease is only lost when its next step is not waiting in the broker either: a step
that is queued (or was delivered within the grace period, so a worker is about to take its lease) is
left alone however long the queue, so a backlog never looks like a crash and re-enqueues follow real
losses (a message lost with Redis, a delivery that was a no-op, a worker killed mid-step), not the
queue's length. Reading the broker costs a pass over its queue, so it is done at most once per call
and only when some analysis looks stalled without it.
"""

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from analysis.db.script import Answer
from analysis.db.scripts.watch import StuckCheck, WatchdogCheck
from analysis.engine.replies import text_or_none
from analysis.engine.store import AnalysisStore
from analysis.models import GistField, Status

# Deliveries the broker holds, by analysis id: each 'chain:seq'.
PendingSteps = Callable[[], Mapping[str, Iterable[str]]]
SHOULD_RUN = (Status.RUNNING, Status.PENDING)
LIVE = (*SHOULD_RUN, Status.PAUSED)
# Answers of STUCK_CHECK that /stuck lists.
STUCK = (StuckCheck.STUCK, StuckCheck.EXPIRED, StuckCheck.HALTED)


@dataclass(frozen=True)
class Verdict:
    analysis_id: str
    answer: Answer[WatchdogCheck]


def no_broker() -> Mapping[str, Iterable[str]]:
    return {}


def check_live(
    store: AnalysisStore, pending_steps: PendingSteps, now: float, confirm_s: float = 0.0
) -> list[Verdict]:
    """The watchdog's pass: act on the rule for every live analysis that should run (kick, give
    up, park a lost control key); answers what it did to each it acted on. Final and expired
    analyses leave the live index on the way.

    A step that looks lost is looked at again `confirm_s` later, with a fresh read of the broker,
    before anything is done: a message the broker is handing to a worker is, for a moment, in
    neither its queue nor its unacknowledged set, and a worker on a busy machine may take a
    moment between delivery and lease; neither is a lost step."""
    ids = store.live_ids()
    with store.redis.pipeline(transaction=False) as pipe:
        for analysis_id in ids:
            pipe.hget(store.keys.gist(analysis_id), GistField.STATUS)
        statuses = [text_or_none(raw) for raw in pipe.execute()]
    store.sweep([i for i, status in zip(ids, statuses) if status not in LIVE], now=now)
    verdicts, undecided = [], []
    for analysis_id, status in zip(ids, statuses):
        if status not in SHOULD_RUN:
            continue
        looks = store.stuck_check(analysis_id, now=now)  # read only, without the broker
        if looks.code == StuckCheck.STUCK:
            undecided.append(analysis_id)
        elif looks.code == StuckCheck.EXPIRED:
            verdicts.append(Verdict(analysis_id, store.watchdog_check(analysis_id, now=now)))
    if undecided:
        pending = pending_steps()
        if confirm_s > 0 and any(
            store.stuck_check(i, now=now, pending=pending.get(i, ())).code == StuckCheck.STUCK
            for i in undecided
        ):
            time.sleep(confirm_s)
            pending = pending_steps()
        for analysis_id in undecided:
            answer = store.watchdog_check(analysis_id, now=now, pending=pending.get(analysis_id, ()))
            verdicts.append(Verdict(analysis_id, answer))
    return verdicts


def stuck(
    store: AnalysisStore, pending_steps: PendingSteps, now: float, *, grace_s: float | None = None
) -> list[str]:
    """Ids the rule calls stuck, read only: to be re-enqueued (their next step is not waiting in
    the broker), parked without control, or halted by the watchdog."""
    found, undecided = set(), []
    ids = store.live_ids()
    for analysis_id in ids:
        code = store.stuck_check(analysis_id, now=now, grace_s=grace_s).code
        if code == StuckCheck.STUCK:
            undecided.append(analysis_id)
        elif code in STUCK:
            found.add(analysis_id)
    if undecided:
        pending = pending_steps()
        found |= {
            i
            for i in undecided
            if store.stuck_check(i, now=now, grace_s=grace_s, pending=pending.get(i, ())).code
            == StuckCheck.STUCK
        }
    return [i for i in ids if i in found]
