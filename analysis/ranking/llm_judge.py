"""The LLM judge: orders markets for a trader through any OpenAI-compatible chat endpoint, one
listwise order (`rank_many`) or one pairwise verdict (`compare_many`) per request, with our own
counted retries, a cache of valid answers and errors fit for a trader.

This module is the judge's public face: the value types (judge_values.py), the prompts and
parsers of the contract (judge_prompts.py) and the reading of failed calls (judge_faults.py) are
imported from here; one request's task and outcome, and the error a trader sees when requests
fail for good, are judge_requests.py's. The HTTP contract and the retry behaviour are written out
in docs/strategies.md ("The contract for OpenAI-compatible servers").
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import openai
from openai import OpenAI

from analysis.ranking.judge_faults import Fault, fault_from_error, retry_after_seconds, safe_host
from analysis.ranking.judge_prompts import (
    CACHE_KEY_VERSION,
    LIST_SCHEMA_NAME,
    LIST_SYSTEM_PROMPT,
    SCHEMA_NAME,
    SYSTEM_PROMPT,
    USER_PROMPT_TEMPLATE,
    BadAnswer,
    build_list_messages,
    build_list_response_format,
    build_messages,
    build_response_format,
    cache_key,
    encode_ranking,
    encode_verdict,
    parse_ranking,
    parse_verdict,
)
from analysis.ranking.judge_requests import Outcome, Task, message_content, unavailable
from analysis.ranking.judge_values import (
    JudgeStats,
    ListRequest,
    ListVerdict,
    LLMJudgeUnavailable,
    MemoryResponseCache,
    PairRequest,
    ResponseCache,
    Verdict,
)

__all__ = [
    "CACHE_KEY_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRY_AFTER_S",
    "LIST_SCHEMA_NAME",
    "LIST_SYSTEM_PROMPT",
    "SCHEMA_NAME",
    "SYSTEM_PROMPT",
    "USER_PROMPT_TEMPLATE",
    "BadAnswer",
    "JudgeStats",
    "LLMJudge",
    "LLMJudgeUnavailable",
    "ListRequest",
    "ListVerdict",
    "MemoryResponseCache",
    "PairRequest",
    "ResponseCache",
    "Verdict",
    "build_list_messages",
    "build_list_response_format",
    "build_messages",
    "build_response_format",
    "cache_key",
    "encode_ranking",
    "encode_verdict",
    "parse_ranking",
    "parse_verdict",
    "retry_after_seconds",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_RETRY_AFTER_S = 60.0
DEFAULT_BASE_URL = "https://api.openai.com/v1"


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
        self._where = safe_host(resolved_url)

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

        outcomes = self._ask_all(
            {
                key: (
                    Task(
                        f"{request.first} vs {request.second}",
                        partial(parse_verdict, first=request.first, second=request.second),
                        encode_verdict,
                    ),
                    messages,
                    response_format,
                )
                for key, (request, messages, response_format) in prepared.items()
            },
            model,
        )

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
            raise unavailable([outcomes[k] for k in failed_keys], len(requests), stats, self._redact)
        return verdicts, stats

    def rank_many(self, requests: list[ListRequest], *, model: str) -> tuple[list[ListVerdict], JudgeStats]:
        """One listwise order per request, in order, and what the calls cost; faults, retries,
        cache and `LLMJudgeUnavailable` exactly as in `compare_many`. A ranking that misses,
        repeats or invents a symbol is a malformed answer (retried, and its call counted)."""
        prepared: dict[str, tuple[Task, list[dict[str, str]], dict[str, Any]]] = {}
        keys: list[str] = []
        for request in requests:
            if len(request.shown) < 2 or len(set(request.shown)) != len(request.shown):
                raise ValueError(
                    f"a listwise request needs two or more distinct markets, got {request.shown}"
                )
            if len(request.summaries) != len(request.shown):
                raise ValueError("a listwise request needs one summary per market shown")
            messages, response_format = build_list_messages(request), build_list_response_format(request)
            key = cache_key(model, messages, response_format)
            task = Task(
                f"an order of {len(request.shown)} ({request.shown[0]}, ...)",
                partial(parse_ranking, shown=request.shown),
                encode_ranking,
            )
            prepared.setdefault(key, (task, messages, response_format))
            keys.append(key)
        outcomes = self._ask_all(prepared, model)
        stats = JudgeStats()
        for outcome in outcomes.values():
            stats.add(outcome.stats)
        verdicts = [
            ListVerdict(r.shown, outcomes[k].verdict, model, outcomes[k].cached)
            for r, k in zip(requests, keys)
            if outcomes[k].verdict is not None
        ]
        failed_keys = [k for k in keys if outcomes[k].verdict is None]
        stats.failures = len(failed_keys)
        self.last_stats = stats
        if failed_keys:
            raise unavailable([outcomes[k] for k in failed_keys], len(requests), stats, self._redact)
        return verdicts, stats

    def ask_structured(
        self,
        label: str,
        parse: Callable[[str | None], Any],
        encode: Callable[[Any], dict[str, Any]],
        messages: list[dict[str, str]],
        response_format: dict[str, Any],
        *,
        model: str,
    ) -> tuple[Any, JudgeStats]:
        """One call of another contract (analysis/ranking/llm_reasons.py) with this judge's
        retries, cache and faults: `parse` reads an answer (BadAnswer: retried), `encode` is
        what is cached. The parsed answer and what it cost, or `LLMJudgeUnavailable`."""
        key = cache_key(model, messages, response_format)
        outcome = self._ask_all({key: (Task(label, parse, encode), messages, response_format)}, model)[key]
        stats = outcome.stats
        stats.failures = int(outcome.verdict is None)
        if outcome.verdict is None:
            raise unavailable([outcome], 1, stats, self._redact)
        return outcome.verdict, stats

    def _ask_all(
        self, prepared: dict[str, tuple[Task, list[dict[str, str]], dict[str, Any]]], model: str
    ) -> dict[str, Outcome]:
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
        task: Task,
        messages: list[dict[str, str]],
        response_format: dict[str, Any],
        model: str,
        stop: threading.Event,
    ) -> Outcome:
        outcome = Outcome()
        cached = self._cache_get(key, task)
        if cached is not None:
            outcome.verdict, outcome.cached = cached, True
            outcome.stats.cache_hits = 1
            return outcome
        for attempt in range(self._max_retries + 1):
            if stop.is_set():
                outcome.fault = outcome.fault or Fault("was not asked", "was not asked", retryable=False)
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
                fault = fault_from_error(
                    err,
                    model=model,
                    where=self._where,
                    timeout_s=self._timeout_s,
                    clock=self._clock,
                    redact=self._redact,
                )
            else:
                usage = getattr(response, "usage", None)
                outcome.stats.prompt_tokens += getattr(usage, "prompt_tokens", 0) or 0
                outcome.stats.completion_tokens += getattr(usage, "completion_tokens", 0) or 0
                try:
                    outcome.verdict = task.parse(message_content(response))
                except BadAnswer as bad:
                    fault = Fault(
                        f"the LLM's answer {bad}",
                        f"the LLM kept giving unusable answers (the last one {bad})",
                        True,
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

    def _retry_delay(self, attempt: int, fault: Fault) -> float:
        if fault.retry_after is not None:
            return min(fault.retry_after, self._max_retry_after_s)
        ceiling = min(self._backoff_max_s, self._backoff_base_s * (2**attempt))
        with self._rng_lock:
            return self._rng.uniform(0.0, ceiling)

    def _cache_get(self, key: str, task: Task) -> Any:
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
