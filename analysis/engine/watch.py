"""The one rule for "stuck", over every live analysis: the watchdog acts on it, `/stuck` shows it.

The rule itself is `lua.WATCHDOG_CHECK`. An analysis that should run but holds no lease is only
lost when its next step is not waiting in the broker either: a step that is queued (or was
delivered within the grace period, so a worker is about to take its lease) is left alone however
long the queue, so a backlog never looks like a crash and re-enqueues follow real losses (a
message lost with Redis, a delivery that was a no-op, a worker killed mid-step), not the queue's
length. Reading the broker costs a pass over its queue, so it is done at most once per call and
only when some analysis looks stalled without it.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from analysis.engine.store import AnalysisStore, ScriptAnswer

# Deliveries the broker holds, by analysis id: each 'chain:seq'.
PendingSteps = Callable[[], Mapping[str, Iterable[str]]]
LIVE_STATUSES = (b"RUNNING", b"PENDING", b"PAUSED")
NEEDS_THE_BROKER = ("kick", "gave_up")  # verdicts a pending delivery would change to 'queued'


@dataclass(frozen=True)
class Verdict:
    analysis_id: str
    answer: ScriptAnswer


def no_broker() -> Mapping[str, Iterable[str]]:
    return {}


def check_live(store: AnalysisStore, pending_steps: PendingSteps, now: float, *,
               act: bool) -> list[Verdict]:
    """Apply the rule to every live analysis; with `act` the watchdog's actions happen (kick,
    give up, park), without it nothing is written. Final and expired analyses leave the live
    index on the way (only when acting)."""
    ids = store.live_ids()
    with store.redis.pipeline(transaction=False) as pipe:
        for analysis_id in ids:
            pipe.hget(store.keys.gist(analysis_id), "status")
        statuses = pipe.execute()
    if act:
        store.sweep([i for i, status in zip(ids, statuses) if status not in LIVE_STATUSES], now=now)
    verdicts, undecided = [], []
    for analysis_id, status in zip(ids, statuses):
        if status not in LIVE_STATUSES or (act and status == b"PAUSED"):
            continue  # a paused analysis needs no action; read-only it may show as stuck
        answer = store.watchdog_check(analysis_id, now=now, dry_run=True)
        if answer.code in NEEDS_THE_BROKER and status != b"PAUSED":
            undecided.append(analysis_id)
        elif act and answer.code == "expired":
            verdicts.append(Verdict(analysis_id, store.watchdog_check(analysis_id, now=now)))
        else:
            verdicts.append(Verdict(analysis_id, answer))
    if undecided:
        pending = pending_steps()
        for analysis_id in undecided:
            answer = store.watchdog_check(analysis_id, now=now, pending=pending.get(analysis_id, ()),
                                          dry_run=not act)
            verdicts.append(Verdict(analysis_id, answer))
    return verdicts


STUCK = ("kick", "gave_up", "expired")


def stuck(verdicts: list[Verdict]) -> list[str]:
    """Ids the rule calls stuck: to be re-enqueued, given up on, or parked without control."""
    return [v.analysis_id for v in verdicts if v.answer.code in STUCK]
