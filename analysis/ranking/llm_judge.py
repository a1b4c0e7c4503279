"""The LLM judge: orders markets for a trader through any OpenAI-compatible chat endpoint.

Listwise contract (`rank_many`, the default: LLM_LIST_SIZE markets per call)
------------------------------------------------------------------------------
One call shows m markets, each by its exact symbol with its indicator summary, in the display
order the strategy chose ("Market 1: <SYMBOL>\nIndicators: ..."), and asks for their full
order. The request has the system prompt LIST_SYSTEM_PROMPT and::

    "response_format": {"type": "json_schema", "json_schema": {"name": "market_order", "strict": true,
        "schema": {"type": "object",
                   "properties": {"ranking": {"type": "array",
                                              "items": {"type": "string", "enum": [<the shown symbols>]}}},
                   "required": ["ranking"], "additionalProperties": false}}}

The answer `{"ranking": ["<SYMBOL>", ...]}` names every shown symbol exactly once, best first
(spaces and letter case forgiven). A ranking that misses, repeats or invents a symbol is an
unusable answer: retried like malformed JSON, and its call counted. Cache, retries, faults and
spend are those of the pairwise contract below.

Pairwise contract (`compare_many`, LLM_LIST_SIZE=2)
---------------------------------------------------
One pairwise comparison is one chat completion call, `POST {base_url}/chat/completions`, with
`Authorization: Bearer <OPENAI_API_KEY>` and this body::

    {"model": "<OPENAI_MODEL>",
     "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                  {"role": "user", "content": <the pair prompt, below>}],
     "response_format": {"type": "json_schema", "json_schema": {
         "name": "pairwise_verdict", "strict": true,
         "schema": {"type": "object",
                    "properties": {"winner": {"type": "string", "enum": ["<FIRST>", "<SECOND>"]},
                                   "confidence": {"type": "number"}},
                    "required": ["winner", "confidence"], "additionalProperties": false}}}}

The pair prompt states the trader's question and lists both markets by their exact symbols
(e.g. `BTC/USDT`), first market first, each with a short indicator summary::

    Trader's question: <question>

    Market 1: <FIRST>
    Indicators: <first summary>

    Market 2: <SECOND>
    Indicators: <second summary>

    Which of the two markets better answers the question: <FIRST> or <SECOND>? ...

The answer (`choices[0].message.content`) must be the JSON object
`{"winner": "<SYMBOL>", "confidence": <0..1>}` where the winner is one of the two symbols
(surrounding spaces and letter case are forgiven) and confidence is the model's probability that
the winner is the better of the two. `usage` (prompt/completion tokens) is read when present. No
other request parameter is sent (no temperature, no max_tokens), so reasoning models and small
local servers accept the call alike.

Behaviour
---------
- Retries are ours (the client is built with `max_retries=0`), so counts are exact: a timeout, a
  connection error, HTTP 408/409/429/5xx, an answer that is not valid JSON, is off the schema, or
  names a winner outside the pair is retried up to `max_retries` times with exponential backoff
  and full jitter (`uniform(0, min(backoff_max_s, backoff_base_s * 2**retry))`); a `Retry-After`
  (or `retry-after-ms`) header, in seconds or as an HTTP date, is honoured instead, capped by
  `max_retry_after_s`.
- HTTP 401/403/404 and other 4xx are not retried: they name the setting to fix.
- Valid answers are cached under `cache_key(model, messages, response_format)` (sha256 of the
  full request), as soon as each arrives; a cached answer is never paid for again. When some
  comparisons of a batch fail, `compare_many` waits for the others, keeps their answers in the
  cache, then raises `LLMJudgeUnavailable` with a message fit for a trader.
- The API key never appears in a log line or an error message.

Over 400 lines: it holds both the prompt contract above and the retrying client. Splitting them
(the contract beside the strategy, the client on its own) is left to the listwise judge's rework
of this module, so the two changes do not collide.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import openai
from openai import OpenAI

from analysis.errors import JudgeUnavailable

logger = logging.getLogger(__name__)

SCHEMA_NAME = "pairwise_verdict"
DEFAULT_MAX_RETRY_AFTER_S = 60.0
DEFAULT_BASE_URL = "https://api.openai.com/v1"
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


class ResponseCache(Protocol):
    """Where valid answers are kept, keyed by `cache_key(...)`; must be safe to use from threads."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class MemoryResponseCache:
    """A thread-safe in-memory `ResponseCache` (tests, CLI runs without Redis)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._values.get(key)

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._values[key] = value

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


@dataclass(frozen=True)
class PairRequest:
    first: str  # symbol shown first
    second: str
    first_summary: str
    second_summary: str
    question: str  # the trader's prompt


@dataclass(frozen=True)
class Verdict:
    first: str
    second: str
    winner: str
    confidence: float
    model: str
    cached: bool


@dataclass
class JudgeStats:
    """What one `compare_many` call cost and met.

    calls: chat completion requests sent (every attempt, failed ones included);
    prompt_tokens / completion_tokens: summed from the `usage` of every response received;
    retries: attempts repeated after a fault; cache_hits: comparisons answered from the cache;
    failures: comparisons left without a valid answer.
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    cache_hits: int = 0
    failures: int = 0

    def add(self, other: JudgeStats) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class LLMJudgeUnavailable(JudgeUnavailable):
    """The judge could not answer; `str()` is fit for a trader.

    `retryable` is False when a setting must be fixed first (key, model, base URL), True when a
    later attempt may succeed (server overloaded, timeouts...). `stats` is what the call cost.
    """

    def __init__(self, message: str, *, retryable: bool, stats: JudgeStats) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.stats = stats


def build_messages(request: PairRequest) -> list[dict[str, str]]:
    """The system and user messages of one comparison (see the module docstring)."""
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
    payload = {"v": CACHE_KEY_VERSION, "model": model, "messages": messages, "response_format": response_format}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class BadAnswer(ValueError):
    """An answer off the contract; `str()` says how, in plain words."""


def parse_verdict(content: str | None, first: str, second: str) -> tuple[str, float]:
    """(winner, confidence) from an answer, or BadAnswer."""
    data = _json_object(content)
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
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not math.isfinite(confidence):
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


@dataclass(frozen=True)
class ListRequest:
    shown: tuple[str, ...]  # symbols in display order
    summaries: tuple[str, ...]  # one per shown symbol
    question: str  # the trader's prompt


@dataclass(frozen=True)
class ListVerdict:
    shown: tuple[str, ...]
    ranking: tuple[str, ...]  # best first
    model: str
    cached: bool


def build_list_messages(request: ListRequest) -> list[dict[str, str]]:
    """The system and user messages of one listwise call: the question, then each market by its
    symbol with its summary, in display order."""
    lines = [f"Trader's question: {request.question.strip()}", ""]
    for number, (symbol, summary) in enumerate(zip(request.shown, request.summaries), start=1):
        lines += [f"Market {number}: {symbol}", f"Indicators: {summary.strip()}", ""]
    lines.append(f"Order all {len(request.shown)} markets, best answer to the question first. "
                 "Name every market exactly once by its exact symbol.")
    return [{"role": "system", "content": LIST_SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def build_list_response_format(request: ListRequest) -> dict[str, Any]:
    """The strict json_schema response format of the listwise contract (issue 14), exactly."""
    schema = {
        "type": "object",
        "properties": {"ranking": {"type": "array", "items": {"type": "string", "enum": list(request.shown)}}},
        "required": ["ranking"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": LIST_SCHEMA_NAME, "strict": True, "schema": schema}}


def parse_ranking(content: str | None, shown: tuple[str, ...]) -> tuple[str, ...]:
    """The ranking of an answer, as the shown symbols best first, or BadAnswer if it misses,
    repeats or invents a symbol (spaces and letter case are forgiven)."""
    data = _json_object(content)
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


def _json_object(content: str | None) -> dict[str, Any]:
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


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: float) -> float | None:
    """Seconds asked by `retry-after-ms` or `Retry-After` (seconds or HTTP date), or None."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass(frozen=True)
class _Fault:
    """Why one attempt failed, in two phrasings: once, and for repeated failures."""

    once: str
    kept: str
    retryable: bool
    retry_after: float | None = None


def encode_verdict(verdict: tuple[str, float]) -> dict[str, Any]:
    """A pair's answer as the JSON object cached."""
    return {"winner": verdict[0], "confidence": verdict[1]}


def encode_ranking(ranking: tuple[str, ...]) -> dict[str, Any]:
    """An order's answer as the JSON object cached."""
    return {"ranking": list(ranking)}


@dataclass(frozen=True)
class _Task:
    """How to read one request's answer: `parse` (content -> value, or BadAnswer), `encode`
    (value -> the JSON object cached), and a label for log lines."""

    label: str
    parse: Callable[[str | None], Any]
    encode: Callable[[Any], dict[str, Any]]


@dataclass
class _Outcome:
    verdict: Any = None
    cached: bool = False
    fault: _Fault | None = None
    attempts: int = 0
    stats: JudgeStats = field(default_factory=JudgeStats)


class LLMJudge:
    """Compares pairs of markets with an LLM; built once per worker (it holds the HTTP client).

    Concurrency: `compare_many` runs the sync client in a thread pool of `max_concurrency`. The
    judge runs inside a Celery prefork worker with no event loop, the sync client's connection
    pool is thread-safe and lives as long as the judge (an AsyncOpenAI client is tied to the loop
    of one `asyncio.run`), and `sleep` stays a plain injectable function.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        timeout_s: float,
        max_concurrency: int,
        max_retries: int,
        backoff_base_s: float,
        backoff_max_s: float,
        cache: ResponseCache,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key:
            raise LLMJudgeUnavailable(
                "No API key for the LLM judge: set OPENAI_API_KEY (any non-empty value for a local "
                "server that needs none).",
                retryable=False,
                stats=JudgeStats(),
            )
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ValueError("need max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._max_concurrency = max_concurrency
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._max_retry_after_s = max_retry_after_s
        self._cache = cache
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._clock = clock
        self.last_stats = JudgeStats()
        # max_retries=0: we retry ourselves, so every attempt is counted and every wait injectable.
        # base_url None means OpenAI itself; the settings, not the client, read OPENAI_BASE_URL.
        resolved_url = base_url or DEFAULT_BASE_URL
        self._client = OpenAI(api_key=api_key, base_url=resolved_url, timeout=timeout_s, max_retries=0)
        self._where = _safe_host(resolved_url)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def compare_many(self, requests: list[PairRequest], *, model: str) -> tuple[list[Verdict], JudgeStats]:
        """One verdict per request, in order, and what the call cost.

        Runs up to `max_concurrency` comparisons at once. If any comparison fails for good, the
        others still finish and their answers are cached before `LLMJudgeUnavailable` is raised
        (its `stats` holds the cost). Identical requests in one batch are asked once.
        """
        for request in requests:
            if request.first == request.second:
                raise ValueError(f"cannot compare {request.first} with itself")
        prepared: dict[str, tuple[PairRequest, list[dict[str, str]], dict[str, Any]]] = {}
        keys: list[str] = []
        for request in requests:
            messages, response_format = build_messages(request), build_response_format(request)
            key = cache_key(model, messages, response_format)
            prepared.setdefault(key, (request, messages, response_format))
            keys.append(key)

        outcomes = self._ask_all({
            key: (_Task(f"{request.first} vs {request.second}",
                        partial(parse_verdict, first=request.first, second=request.second),
                        encode_verdict),
                  messages, response_format)
            for key, (request, messages, response_format) in prepared.items()}, model)

        stats = JudgeStats()
        for outcome in outcomes.values():
            stats.add(outcome.stats)
        verdicts: list[Verdict] = []
        failed_keys: list[str] = []
        for request, key in zip(requests, keys):
            outcome = outcomes[key]
            if outcome.verdict is None:
                failed_keys.append(key)
                continue
            winner, confidence = outcome.verdict
            verdicts.append(Verdict(request.first, request.second, winner, confidence, model, outcome.cached))
        stats.failures = len(failed_keys)
        self.last_stats = stats
        if failed_keys:
            raise self._unavailable([outcomes[k] for k in failed_keys], len(requests), stats)
        return verdicts, stats

    def rank_many(self, requests: list[ListRequest], *, model: str) -> tuple[list[ListVerdict], JudgeStats]:
        """One listwise order per request, in order, and what the calls cost; faults, retries,
        cache and `LLMJudgeUnavailable` exactly as in `compare_many`. A ranking that misses,
        repeats or invents a symbol is a malformed answer (retried, and its call counted)."""
        prepared: dict[str, tuple[_Task, list[dict[str, str]], dict[str, Any]]] = {}
        keys: list[str] = []
        for request in requests:
            if len(request.shown) < 2 or len(set(request.shown)) != len(request.shown):
                raise ValueError(f"a listwise request needs two or more distinct markets, got {request.shown}")
            if len(request.summaries) != len(request.shown):
                raise ValueError("a listwise request needs one summary per market shown")
            messages, response_format = build_list_messages(request), build_list_response_format(request)
            key = cache_key(model, messages, response_format)
            task = _Task(f"an order of {len(request.shown)} ({request.shown[0]}, ...)",
                         partial(parse_ranking, shown=request.shown), encode_ranking)
            prepared.setdefault(key, (task, messages, response_format))
            keys.append(key)
        outcomes = self._ask_all(prepared, model)
        stats = JudgeStats()
        for outcome in outcomes.values():
            stats.add(outcome.stats)
        verdicts = [ListVerdict(r.shown, outcomes[k].verdict, model, outcomes[k].cached)
                    for r, k in zip(requests, keys) if outcomes[k].verdict is not None]
        failed_keys = [k for k in keys if outcomes[k].verdict is None]
        stats.failures = len(failed_keys)
        self.last_stats = stats
        if failed_keys:
            raise self._unavailable([outcomes[k] for k in failed_keys], len(requests), stats)
        return verdicts, stats

    def ask_structured(self, label: str, parse: Callable[[str | None], Any],
                       encode: Callable[[Any], dict[str, Any]], messages: list[dict[str, str]],
                       response_format: dict[str, Any], *, model: str) -> tuple[Any, JudgeStats]:
        """One call of another contract (analysis/ranking/llm_reasons.py) with this judge's
        retries, cache and faults: `parse` reads an answer (BadAnswer: retried), `encode` is
        what is cached. The parsed answer and what it cost, or `LLMJudgeUnavailable`."""
        key = cache_key(model, messages, response_format)
        outcome = self._ask_all({key: (_Task(label, parse, encode), messages, response_format)}, model)[key]
        stats = outcome.stats
        stats.failures = int(outcome.verdict is None)
        if outcome.verdict is None:
            raise self._unavailable([outcome], 1, stats)
        return outcome.verdict, stats

    def _ask_all(self, prepared: dict[str, tuple[_Task, list[dict[str, str]], dict[str, Any]]],
                 model: str) -> dict[str, _Outcome]:
        """Ask every prepared request (keyed by cache key) concurrently; wait for all of them."""
        stop = threading.Event()  # set on a settings error: no point asking the rest
        if not prepared:
            return {}
        workers = min(self._max_concurrency, len(prepared))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-judge") as pool:
            futures = {
                key: pool.submit(self._judge_one, key, task, messages, response_format, model, stop)
                for key, (task, messages, response_format) in prepared.items()
            }
            # Wait for every request before raising anything (a bug re-raises here too).
            return {key: future.result() for key, future in futures.items()}

    def _judge_one(
        self,
        key: str,
        task: _Task,
        messages: list[dict[str, str]],
        response_format: dict[str, Any],
        model: str,
        stop: threading.Event,
    ) -> _Outcome:
        outcome = _Outcome()
        cached = self._cache_get(key, task)
        if cached is not None:
            outcome.verdict, outcome.cached = cached, True
            outcome.stats.cache_hits = 1
            return outcome
        for attempt in range(self._max_retries + 1):
            if stop.is_set():
                outcome.fault = outcome.fault or _Fault("was not asked", "was not asked", retryable=False)
                return outcome
            if attempt:
                outcome.stats.retries += 1
            outcome.attempts = attempt + 1
            outcome.stats.calls += 1
            try:
                # The messages and format are plain dicts of the shapes the client's TypedDicts name.
                response = self._client.chat.completions.create(  # type: ignore[call-overload]
                    model=model, messages=messages, response_format=response_format
                )
            except openai.OpenAIError as err:
                fault = self._fault_from_error(err, model)
            else:
                usage = getattr(response, "usage", None)
                outcome.stats.prompt_tokens += getattr(usage, "prompt_tokens", 0) or 0
                outcome.stats.completion_tokens += getattr(usage, "completion_tokens", 0) or 0
                try:
                    outcome.verdict = task.parse(_content(response))
                except BadAnswer as bad:
                    fault = _Fault(
                        f"the LLM's answer {bad}", f"the LLM kept giving unusable answers (the last one {bad})", True
                    )
                else:
                    outcome.fault = None
                    self._cache_set(key, task.encode(outcome.verdict))
                    return outcome
            outcome.fault = fault
            if not fault.retryable:
                logger.error("LLM judge gave up on %s: %s", task.label, fault.once)
                stop.set()
                return outcome
            if attempt == self._max_retries:
                break
            delay = self._retry_delay(attempt, fault)
            logger.warning(
                "LLM judge retry %d/%d for %s in %.2fs: %s",
                attempt + 1, self._max_retries, task.label, delay, fault.once,
            )  # fmt: skip
            self._sleep(delay)
        logger.warning(
            "LLM judge failed %s after %d attempts: %s",
            task.label, outcome.attempts, outcome.fault.once if outcome.fault else "?",
        )  # fmt: skip
        return outcome

    def _retry_delay(self, attempt: int, fault: _Fault) -> float:
        if fault.retry_after is not None:
            return min(fault.retry_after, self._max_retry_after_s)
        ceiling = min(self._backoff_max_s, self._backoff_base_s * (2**attempt))
        with self._rng_lock:
            return self._rng.uniform(0.0, ceiling)

    def _fault_from_error(self, err: openai.OpenAIError, model: str) -> _Fault:
        where = self._where
        if isinstance(err, openai.APITimeoutError):
            return _Fault(
                f"the LLM server took longer than {self._timeout_s:g} s to answer",
                f"the LLM server kept taking longer than {self._timeout_s:g} s to answer",
                retryable=True,
            )
        if isinstance(err, openai.APIConnectionError):
            return _Fault(
                f"could not connect to the LLM server at {where}",
                f"could not connect to the LLM server at {where}",
                retryable=True,
            )
        if isinstance(err, openai.APIStatusError):
            return self._fault_from_status(err, model, where)
        if isinstance(err, openai.APIError):  # e.g. a 200 whose body is not a chat completion
            return _Fault(
                "the LLM server sent a response that is not a chat completion",
                "the LLM server kept sending responses that are not chat completions",
                retryable=True,
            )
        return _Fault(
            f"The OpenAI client refused the call ({type(err).__name__}). Check OPENAI_BASE_URL and OPENAI_API_KEY.",
            "",
            retryable=False,
        )

    def _fault_from_status(self, err: openai.APIStatusError, model: str, where: str) -> _Fault:
        status = err.status_code
        if status == 401:
            return _Fault(
                f"The LLM server at {where} rejected the API key (HTTP 401). Check OPENAI_API_KEY.", "", False
            )
        if status == 403:
            return _Fault(
                f"The LLM server at {where} refused access with this API key (HTTP 403), perhaps to model "
                f"{model!r}. Check OPENAI_API_KEY and OPENAI_MODEL (OPENAI_REFINE_MODEL when refining).",
                "",
                False,
            )
        if status == 404:
            return _Fault(
                f"The LLM server at {where} does not know model {model!r} or has no chat completions "
                "endpoint (HTTP 404). Check OPENAI_MODEL (OPENAI_REFINE_MODEL when refining) and OPENAI_BASE_URL.",
                "",
                False,
            )
        if status == 429 or status in (408, 409) or status >= 500:
            headers = err.response.headers if err.response is not None else None
            wait = retry_after_seconds(headers, now=self._clock())
            label = f"{status} (too many requests)" if status == 429 else str(status)
            return _Fault(
                f"the LLM server answered {label}", f"the LLM server kept answering {label}", True, retry_after=wait
            )
        detail = self._redact(_server_message(err))[:200]
        return _Fault(
            f"The LLM server at {where} rejected the request (HTTP {status}{': ' + detail if detail else ''}). "
            f"The model may not support structured JSON answers; check OPENAI_MODEL and OPENAI_BASE_URL.",
            "",
            False,
        )

    def _unavailable(self, failed: list[_Outcome], total: int, stats: JudgeStats) -> LLMJudgeUnavailable:
        asked = [o for o in failed if o.attempts]
        fatal = next((o for o in asked if o.fault and not o.fault.retryable), None)
        if fatal is not None and fatal.fault is not None:
            return LLMJudgeUnavailable(self._redact(fatal.fault.once), retryable=False, stats=stats)
        first = asked[0] if asked else failed[0]
        fault = first.fault or _Fault("the LLM judge gave no answer", "the LLM judge gave no answer", True)
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
        return LLMJudgeUnavailable(self._redact(reason) + ".", retryable=True, stats=stats)

    def _cache_get(self, key: str, task: _Task) -> Any:
        try:
            value = self._cache.get(key)
        except Exception:  # a cache outage costs money, not correctness
            logger.warning("LLM judge cache read failed; asking the LLM", exc_info=True)
            return None
        if value is None:
            return None
        try:
            return task.parse(value)
        except BadAnswer:
            logger.warning("LLM judge ignored an unreadable cached answer for %s", task.label)
            return None

    def _cache_set(self, key: str, answer: dict[str, Any]) -> None:
        try:
            self._cache.set(key, json.dumps(answer))
        except Exception:  # the answer is still returned; only a resumed step would pay again
            logger.warning("LLM judge cache write failed", exc_info=True)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _content(response: Any) -> str | None:
    try:
        message = response.choices[0].message
    except (AttributeError, IndexError, TypeError):
        raise BadAnswer("had no message") from None
    if getattr(message, "refusal", None):
        raise BadAnswer("was a refusal")
    return message.content


def _server_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
    return ""


def _safe_host(base_url: str) -> str:
    """The server's scheme://host[:port]/path without any user:password part."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")
