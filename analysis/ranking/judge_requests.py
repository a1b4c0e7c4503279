"""One request to the LLM judge: how to read its answer (`Task`), what asking it came to
(`Outcome`: the answer, a cache hit, the last fault, attempts and cost), the text of a chat
completion, and the error a trader sees when requests failed for good.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from analysis.ranking.judge_faults import Fault
from analysis.ranking.judge_prompts import BadAnswer
from analysis.ranking.judge_values import JudgeStats, LLMJudgeUnavailable


@dataclass(frozen=True)
class Task:
    """How to read one request's answer: `parse` (content -> value, or BadAnswer), `encode`
    (value -> the JSON object cached), and a label for log lines."""

    label: str
    parse: Callable[[str | None], Any]
    encode: Callable[[Any], dict[str, Any]]


@dataclass
class Outcome:
    """What asking one request came to: its answer (None: failed), whether from the cache, the
    last fault, how many attempts and what they cost."""

    verdict: Any = None
    cached: bool = False
    fault: Fault | None = None
    attempts: int = 0
    stats: JudgeStats = field(default_factory=JudgeStats)


def unavailable(
    failed: list[Outcome], total: int, stats: JudgeStats, redact: Callable[[str], str]
) -> LLMJudgeUnavailable:
    """The error a trader sees when requests failed for good: the fatal fault if one was, else
    the first asked request's (how many attempts), and how many of `total` were answered and
    saved; `redact` keeps the API key out of it."""
    asked = [o for o in failed if o.attempts]
    fatal = next((o for o in asked if o.fault and not o.fault.retryable), None)
    if fatal is not None and fatal.fault is not None:
        return LLMJudgeUnavailable(redact(fatal.fault.once), retryable=False, stats=stats)
    first = asked[0] if asked else failed[0]
    fault = first.fault or Fault("the LLM judge gave no answer", "the LLM judge gave no answer", True)
    if first.attempts > 1:
        reason = f"{fault.kept} after {first.attempts} attempts"
    else:
        reason = f"{fault.once} ({first.attempts} attempt)"
    reason = reason[0].upper() + reason[1:]
    answered = total - len(failed)
    if total > 1:
        reason += f". {len(failed)} of {total} comparisons failed"
        if answered:
            reason += f"; the {answered} answered are saved and will not be asked again"
    return LLMJudgeUnavailable(redact(reason) + ".", retryable=True, stats=stats)


def message_content(response: Any) -> str | None:
    """The answer's text; BadAnswer for a response with no message, or a refusal."""
    try:
        message = response.choices[0].message
    except (AttributeError, IndexError, TypeError):
        raise BadAnswer("had no message") from None
    if getattr(message, "refusal", None):
        raise BadAnswer("was a refusal")
    return message.content
