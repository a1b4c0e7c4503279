"""The judge's reasons: after an llm ranking completes, one call asks for a short reason per
top-K market, shown beside a fixed table of facts from the candles (docs/explain.md).

Contract: the system prompt REASONS_SYSTEM_PROMPT, a user message with the trader's question and
each top-K market in rank order with its indicator summary, and::

    "response_format": {"type": "json_schema", "json_schema": {"name": "market_reasons", "strict": true,
        "schema": {"type": "object",
                   "properties": {"reasons": {"type": "array", "items": {
                       "type": "object",
                       "properties": {"symbol": {"type": "string", "enum": [<the top-K symbols>]},
                                      "reason": {"type": "string"}},
                       "required": ["symbol", "reason"], "additionalProperties": false}}},
                   "required": ["reasons"], "additionalProperties": false}}}

The answer names every top-K symbol exactly once (spaces and letter case forgiven); one that
misses, repeats or invents a symbol, or whose reason is not text, is malformed and retried like
any judge answer (analysis/ranking/llm_judge.py: retries, cache, spend). A reason is model text:
control characters and runs of white space become one space, and it is cut to REASON_MAX_CHARS;
the fronts show it as plain text (escaped), never as markup.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from analysis.ranking.judge_prompts import json_object
from analysis.ranking.llm_judge import BadAnswer, JudgeStats

SCHEMA_NAME = "market_reasons"
REASON_MAX_CHARS = 160
REASONS_SYSTEM_PROMPT = (
    "You are a careful crypto market analyst. A ranking of markets for a trader's question is "
    "final; for each ranked market give one short reason (at most 25 words) why it ranks where "
    "it does, citing only the indicators given. Do not invent numbers.\n"
    'Reply with a JSON object only: {"reasons": [{"symbol": "<symbol>", "reason": "<text>"}, ...]}, '
    "one entry per market listed, each symbol copied exactly as it is listed."
)


@dataclass(frozen=True)
class ReasonsRequest:
    ranked: tuple[str, ...]  # the top K, best first
    summaries: tuple[str, ...]  # one per ranked symbol
    question: str


class StructuredJudge(Protocol):
    """What this call needs of a judge: one structured call through its retries, cache and spend."""

    def ask_structured(
        self,
        label: str,
        parse: Any,
        encode: Any,
        messages: list[dict[str, str]],
        response_format: dict[str, Any],
        *,
        model: str,
    ) -> tuple[Any, JudgeStats]: ...


def build_messages(request: ReasonsRequest) -> list[dict[str, str]]:
    lines = [f"Trader's question: {request.question.strip()}", ""]
    for rank, (symbol, summary) in enumerate(zip(request.ranked, request.summaries), start=1):
        lines += [f"Rank {rank}: {symbol}", f"Indicators: {summary.strip()}", ""]
    lines.append(f"Give one short reason for each of the {len(request.ranked)} markets.")
    return [
        {"role": "system", "content": REASONS_SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


def build_response_format(request: ReasonsRequest) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "symbol": {"type": "string", "enum": list(request.ranked)},
            "reason": {"type": "string"},
        },
        "required": ["symbol", "reason"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {"reasons": {"type": "array", "items": item}},
        "required": ["reasons"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema}}


def plain_reason(text: str) -> str:
    """Model text made one plain line: control and format characters and runs of white space
    become one space; cut to REASON_MAX_CHARS with an ellipsis."""
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    cleaned = re.sub(r" +", " ", cleaned).strip()
    if len(cleaned) > REASON_MAX_CHARS:
        cleaned = cleaned[: REASON_MAX_CHARS - 1].rstrip() + "…"
    return cleaned


def parse_reasons(content: str | None, ranked: tuple[str, ...]) -> dict[str, str]:
    """symbol -> reason (plain, cut), or BadAnswer if a top-K symbol is missing, repeated or
    invented, or a reason is not text."""
    data = json_object(content)
    items = data.get("reasons")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BadAnswer("had no list of 'reasons'")
    by_name = {s.casefold(): s for s in ranked}
    reasons: dict[str, str] = {}
    for item in items:
        symbol, reason = item.get("symbol"), item.get("reason")
        if not isinstance(symbol, str) or not isinstance(reason, str):
            raise BadAnswer("had a reason without a symbol or text")
        canonical = by_name.get(symbol.strip().casefold())
        if canonical is None:
            raise BadAnswer(f"gave a reason for a market not ranked ({symbol[:40]!r})")
        if canonical in reasons:
            raise BadAnswer(f"gave {canonical} more than one reason")
        reasons[canonical] = plain_reason(reason)
    missing = [s for s in ranked if s not in reasons]
    if missing:
        raise BadAnswer(f"left out {len(missing)} of the {len(ranked)} markets ({missing[0]})")
    return {s: reasons[s] for s in ranked}


def encode_reasons(reasons: dict[str, str]) -> dict[str, Any]:
    return {"reasons": [{"symbol": s, "reason": r} for s, r in reasons.items()]}


def ask_reasons(
    judge: StructuredJudge, request: ReasonsRequest, *, model: str
) -> tuple[dict[str, str], JudgeStats]:
    """One reason per ranked market, and what the call cost; LLMJudgeUnavailable if the judge
    gave no usable answer after its retries."""
    return judge.ask_structured(
        f"reasons for the top {len(request.ranked)}",
        partial(parse_reasons, ranked=request.ranked),
        encode_reasons,
        build_messages(request),
        build_response_format(request),
        model=model,
    )
