"""What each answer of a control action's script means to the service: whether it changed
anything, what the user is told, whether the next step is enqueued. Every answer has a decision,
checked when the module loads (tests/test_lua_scripts.py), so no script answer reaches a user raw.
"""

from dataclasses import dataclass

from analysis.db.script import A
from analysis.db.scripts.controls import Cancel, ForceResume, Pause, Refine, Resume

# A refine raises the target by REFINE_STEP, up to REFINE_CAP.
REFINE_STEP, REFINE_CAP = 0.05, 0.99
# What a trader is told at the per-user limits, by a start and by a refine that restarts a
# completed analysis alike ({0}: how many, {1}: the limit).
ACTIVE_LIMIT_TEXT = (
    "you already have {0} analyses running; the limit is {1}: cancel one or wait for it to finish"
)
HOURLY_QUOTA_TEXT = "you started {0} analyses in the last hour; the limit is {1} an hour: try again later"


@dataclass(frozen=True)
class Decision:
    """What a script's answer to an action means: whether it changed anything, what the user is
    told (`{0}`, `{1}`... are the answer's values, `{status}` the first one in lower case), and
    whether the next step is enqueued (its seq is the first value)."""

    changed: bool
    message: str = ""
    enqueue: bool = False
    not_found: bool = False
    already: bool = False  # nothing to do because it is done already (an idempotent repeat)
    refused: bool = False  # a limit: raised as LimitReached with the message

    def render(self, values: list[str]) -> str:
        return self.message.format(*values, status=values[0].lower() if values else "")


_SHARED = {
    "final": Decision(False, "Nothing to do: the analysis is already {status}."),
    "missing": Decision(False, not_found=True),
}


def decisions(answers: type[A], table: dict[A, Decision]) -> dict[A, Decision]:
    """The decision for every answer a script can give (the shared `final` and `missing` added);
    a script answer without a decision is refused here, at import, not shown to a user."""
    full = {
        answers(code): decision for code, decision in _SHARED.items() if code in answers._value2member_map_
    }
    full.update(table)
    if set(full) != set(answers):
        raise TypeError(f"{answers.__name__}: no decision for {sorted(set(answers) - set(full))}")
    return full


PAUSE_DECISIONS = decisions(
    Pause,
    {
        Pause.OK: Decision(True, "Paused: the step in flight finishes, no new step starts."),
        Pause.NOOP: Decision(False, "Already paused.", already=True),
    },
)
RESUME_DECISIONS = decisions(
    Resume,
    {
        Resume.ENQUEUE: Decision(True, "Resumed.", enqueue=True),
        Resume.FLIPPED: Decision(True, "Resumed."),
        Resume.NOOP: Decision(False, "Already running.", already=True),
        Resume.KEPT: Decision(False, "Left {status}: it was not halted by maintenance."),
    },
)
REFINE_DECISIONS = decisions(
    Refine,
    {
        Refine.ENQUEUE: Decision(True, "Refining toward confidence {1}.", enqueue=True),
        Refine.RAISED: Decision(True, "Target raised to {0}; the analysis carries on."),
        Refine.STALE: Decision(False, "This refine was already applied.", already=True),
        Refine.AT_CAP: Decision(False, f"The target is already at the {REFINE_CAP} maximum."),
        Refine.LIMIT: Decision(False, ACTIVE_LIMIT_TEXT, refused=True),
        Refine.QUOTA: Decision(False, HOURLY_QUOTA_TEXT, refused=True),
    },
)
CANCEL_DECISIONS = decisions(Cancel, {Cancel.OK: Decision(True, "Cancelled.")})
FORCE_RESUME_DECISIONS = decisions(
    ForceResume,
    {
        ForceResume.ENQUEUE: Decision(True, "Force-resumed from step {0}.", enqueue=True),
    },
)
