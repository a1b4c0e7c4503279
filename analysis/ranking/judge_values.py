"""The LLM judge's value types: what a strategy asks (PairRequest, ListRequest), what it gets back
(Verdict, ListVerdict), what a call cost (JudgeStats), the error a trader is shown
(LLMJudgeUnavailable), and where valid answers are cached (ResponseCache).

Imported through `analysis.ranking.llm_judge`, the judge's public face.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Protocol

from analysis.errors import JudgeUnavailable


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
