"""The LLM judge's contract with the server, as text: the prompts, the strict json_schema response
formats, the cache key of a request, and the parsers that accept an answer or say in plain words
why it is unusable (BadAnswer). The contract itself is written out in docs/strategies.md ("The
contract for OpenAI-compatible servers").

Imported through `analysis.ranking.llm_judge`, the judge's public face.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from analysis.ranking.judge_values import ListRequest, PairRequest

SCHEMA_NAME = "pairwise_verdict"
CACHE_KEY_VERSION = 1

SYSTEM_PROMPT = (
    "You are a careful crypto market analyst helping a trader choose between two markets. "
    "You are given the trader's question and, for each of the two markets, a short summary of its "
    "technical indicators. Decide which market better answers the trader's question, judging only "
    "from the summaries given.\n"
    'Reply with a JSON object only: {"winner": "<symbol>", "confidence": <number>}.\n'
    "- winner: the symbol of the better market, copied exactly as it is listed "
    "(for example BTC/USDT); it must be one of the two symbols shown.\n"
    "- confidence: your probability that the winner really is the better of the two, from 0.5 "
    "(a coin flip) to 1 (certain). Be calibrated: do not claim more than the indicators support."
)

USER_PROMPT_TEMPLATE = (
    "Trader's question: {question}\n"
    "\n"
    "Market 1: {first}\n"
    "Indicators: {first_summary}\n"
    "\n"
    "Market 2: {second}\n"
    "Indicators: {second_summary}\n"
    "\n"
    "Which of the two markets better answers the question: {first} or {second}? "
    "Answer with the exact symbol of the winner and your confidence."
)


def build_messages(request: PairRequest) -> list[dict[str, str]]:
    """The system and user messages of one comparison (docs/strategies.md)."""
    user = USER_PROMPT_TEMPLATE.format(
        question=request.question.strip(),
        first=request.first,
        second=request.second,
        first_summary=request.first_summary.strip(),
        second_summary=request.second_summary.strip(),
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def build_response_format(request: PairRequest) -> dict[str, Any]:
    """The strict json_schema response format; `winner` is constrained to the two symbols."""
    schema = {
        "type": "object",
        "properties": {
            "winner": {
                "type": "string",
                "enum": [request.first, request.second],
                "description": "The exact symbol of the market that better answers the question.",
            },
            "confidence": {
                "type": "number",
                "description": "Probability from 0 to 1 that the winner is really the better market.",
            },
        },
        "required": ["winner", "confidence"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema}}


def cache_key(model: str, messages: list[dict[str, str]], response_format: Mapping[str, Any]) -> str:
    """sha256 (hex) of the model and the full request, so any change of prompt is a new key. The
    strategy never asks the same ordered pair twice, so only a retried step meets its key again."""
    payload = {
        "v": CACHE_KEY_VERSION,
        "model": model,
        "messages": messages,
        "response_format": response_format,
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class BadAnswer(ValueError):
    """An answer off the contract; `str()` says how, in plain words."""


def parse_verdict(content: str | None, first: str, second: str) -> tuple[str, float]:
    """(winner, confidence) from an answer, or BadAnswer."""
    data = json_object(content)
    missing = [name for name in ("winner", "confidence") if name not in data]
    if missing:
        raise BadAnswer(f"had no {' and no '.join(repr(m) for m in missing)}")
    winner, confidence = data["winner"], data["confidence"]
    if not isinstance(winner, str):
        raise BadAnswer("had a winner that is not a market symbol")
    by_name = {first.casefold(): first, second.casefold(): second}
    canonical = by_name.get(winner.strip().casefold())
    if canonical is None:
        raise BadAnswer(f"named a winner ({winner[:40]!r}) that is not one of the two markets compared")
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float))
        or not math.isfinite(confidence)
    ):
        raise BadAnswer("had a confidence that is not a number")
    if not 0.0 <= confidence <= 1.0:
        raise BadAnswer(f"had a confidence of {confidence:g}, outside 0 to 1")
    return canonical, float(confidence)


LIST_SCHEMA_NAME = "market_order"

LIST_SYSTEM_PROMPT = (
    "You are a careful crypto market analyst helping a trader rank markets. You are given the "
    "trader's question and, for each market, a short summary of its technical indicators. Order "
    "the markets from the one that best answers the trader's question to the one that answers it "
    "worst, judging only from the summaries given; the order in which they are listed means "
    "nothing.\n"
    'Reply with a JSON object only: {"ranking": ["<symbol>", ...]}, best first, naming every '
    "market shown exactly once, each symbol copied exactly as it is listed (for example BTC/USDT)."
)


def build_list_messages(request: ListRequest) -> list[dict[str, str]]:
    """The system and user messages of one listwise call: the question, then each market by its
    symbol with its summary, in display order."""
    lines = [f"Trader's question: {request.question.strip()}", ""]
    for number, (symbol, summary) in enumerate(zip(request.shown, request.summaries), start=1):
        lines += [f"Market {number}: {symbol}", f"Indicators: {summary.strip()}", ""]
    lines.append(
        f"Order all {len(request.shown)} markets, best answer to the question first. "
        "Name every market exactly once by its exact symbol."
    )
    return [{"role": "system", "content": LIST_SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def build_list_response_format(request: ListRequest) -> dict[str, Any]:
    """The strict json_schema response format of the listwise contract (issue 14), exactly."""
    schema = {
        "type": "object",
        "properties": {
            "ranking": {"type": "array", "items": {"type": "string", "enum": list(request.shown)}}
        },
        "required": ["ranking"],
        "additionalProperties": False,
    }
    return {
        "type": "json_schema",
        "json_schema": {"name": LIST_SCHEMA_NAME, "strict": True, "schema": schema},
    }


def parse_ranking(content: str | None, shown: tuple[str, ...]) -> tuple[str, ...]:
    """The ranking of an answer, as the shown symbols best first, or BadAnswer if it misses,
    repeats or invents a symbol (spaces and letter case are forgiven)."""
    data = json_object(content)
    if "ranking" not in data:
        raise BadAnswer("had no 'ranking'")
    ranking = data["ranking"]
    if not isinstance(ranking, list) or not all(isinstance(x, str) for x in ranking):
        raise BadAnswer("had a ranking that is not a list of market symbols")
    by_name = {s.casefold(): s for s in shown}
    canonical = [by_name.get(x.strip().casefold()) for x in ranking]
    invented = [x for x, c in zip(ranking, canonical) if c is None]
    if invented:
        raise BadAnswer(f"ranked a market that was not shown ({invented[0][:40]!r})")
    names = [c for c in canonical if c is not None]  # every one, after the check above
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise BadAnswer(f"ranked {repeated[0]} more than once")
    missing = [s for s in shown if s not in canonical]
    if missing:
        raise BadAnswer(f"left out {len(missing)} of the {len(shown)} markets shown ({missing[0]})")
    return tuple(canonical)  # type: ignore[arg-type]


def json_object(content: str | None) -> dict[str, Any]:
    """The JSON object of an answer (a Markdown fence forgiven), or BadAnswer."""
    if content is None or not content.strip():
        raise BadAnswer("was empty")
    text = content.strip()
    if text.startswith("```"):  # some servers wrap JSON in a Markdown fence
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise BadAnswer("was not valid JSON") from None
    if not isinstance(data, dict):
        raise BadAnswer("was JSON but not an object")
    return data


def encode_verdict(verdict: tuple[str, float]) -> dict[str, Any]:
    """A pair's answer as the JSON object cached."""
    return {"winner": verdict[0], "confidence": verdict[1]}


def encode_ranking(ranking: tuple[str, ...]) -> dict[str, Any]:
    """An order's answer as the JSON object cached."""
    return {"ranking": list(ranking)}
