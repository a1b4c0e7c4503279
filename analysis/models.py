"""Value objects of the core: the validated config, the gist as read, step history, action results."""

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, model_validator

from analysis.local_time import offset_label, zone_of

# The gist's `model` for an llm analysis after a refine: the workers' OPENAI_REFINE_MODEL.
REFINE_MODEL = "@refine"
AnalysisKind = Literal["rank", "entry", "exit"]


class Status(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class Halt(StrEnum):
    """Why a paused analysis is held, as a value (never read from the human `reason` text)."""

    NONE = ""
    USER = "user"  # its owner (or an admin) paused it
    STUCK = "stuck"  # the watchdog gave up kicking it
    CONTROL_EXPIRED = "control_expired"  # its control key expired: parked
    MAINTENANCE = "maintenance"  # maintenance mode holds it; `maintenance off` resumes it


class GistField(StrEnum):
    """The fields of the gist hash in Redis: the one schema of the Lua scripts (analysis/db/
    scripts/ write them; a test holds CREATE to this list), the store, `Gist` and the watchdog.
    The LLM spend counters are `spend:<name>` besides these."""

    ID = "id"
    OWNER = "owner"
    STATUS = "status"
    REASON = "reason"
    HALT = "halt"  # why it is held paused (Halt): user, stuck, control_expired, maintenance or ''
    SEQ = "seq"
    PROGRESS = "progress"
    CONFIDENCE = "confidence"
    TARGET = "target"
    CONFIG = "config"
    STATE = "state"
    RESULT = "result"
    NOTE = "note"
    VERSION = "version"
    REFINE_GEN = "refine_gen"
    MODEL = "model"
    DEMO = "demo"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    LAST_PROGRESS_AT = "last_progress_at"
    KICKED_AT = "kicked_at"
    WATCHDOG_ATTEMPTS = "watchdog_attempts"
    SCHEDULE = "schedule"  # the schedule that started it ('' for none)
    SCHEDULE_PREV = "schedule_prev"  # that schedule's previous completed run


SPEND_PREFIX = "spend:"


class EstimateState(TypedDict, total=False):
    p_exact: float
    first_bias: float
    p_in_top_k: dict[str, float]
    strengths: dict[str, float]  # every market's fitted strength (the pick record's scores)


class SharedState(TypedDict, total=False):
    """The part of a strategy's state that other layers read (through `Gist`'s properties);
    each strategy's own state extends it (ScoreState, LLMState)."""

    leaders: list[str]  # the best markets so far, for the card
    p_in_top_k: dict[str, float]  # score: share of views each market is in the top K
    log: list[Any]  # llm: answers, [first, second, winner, model] or
    # {shown, ranking, model} for an order
    list_size: int  # llm: markets shown per call (2: pairwise)
    estimate: EstimateState  # llm: the latest Bradley-Terry estimate


class RankingConfig(BaseModel):
    """Everything a worker needs to run one analysis; built only by `RankingConfigFactory`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: AnalysisKind = "rank"
    markets: list[str] = Field(min_length=2)
    timeframe: str
    # A strategy spec, `<name>` or `<name>:<argument>`: the factory accepts only the public ones
    # (score, llm); the worker resolves it in the strategy registry.
    strategy: str = Field("score", pattern=r"^[a-z_]+(:[A-Za-z0-9_.=,-]+)?$")
    top_k: int = Field(ge=1)
    target_confidence: float = Field(ge=0.5, le=0.99)
    prompt: str = ""
    # What the analysis does not do as asked, shown on the card and in the CLI (e.g. a question
    # that no LLM judge reads); set by the factory, which knows at creation what is configured.
    notice: str = ""
    data_source: str = "demo"
    # Whether the data is made up (the card says so): set by the factory from its provider; a
    # config made without one (tests, benches) gets it from the data source's name.
    demo: bool = False
    window: int = Field(500, ge=50)
    batch_size: int = Field(8, ge=1)
    list_size: int = Field(2, ge=2, description="llm strategy: markets shown per call (2: pairs)")
    views: int = Field(12, ge=2, description="score strategy: evaluation moments for confidence")
    candles_to: int | None = Field(
        None,
        description="close time (epoch s) of the newest candle "
        "to rank: INIT ranks none newer, whenever it runs",
    )

    @model_validator(mode="before")
    @classmethod
    def _demo_from_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and "demo" not in data:
            data = {**data, "demo": source_name(str(data.get("data_source", "demo"))) == "demo"}
        return data

    def summary(self) -> str:
        """One line for cards and tables: '30 markets · 1h · score · top 10'."""
        return f"{len(self.markets)} markets · {self.timeframe} · {self.strategy} · top {self.top_k}"


def source_name(data_source: str) -> str:
    """What a card calls a data source: 'binance' for ccxt:binance, 'csv <folder>', 'demo'."""
    if data_source.startswith("faulty:") and data_source.count(":") >= 2:
        return source_name(data_source.split(":", 2)[2])
    if data_source.startswith("ccxt:"):
        return data_source[len("ccxt:") :]
    if data_source.startswith("csv:"):
        return "csv " + data_source[len("csv:") :].rstrip("/").rsplit("/", 1)[-1]
    return data_source


def source_label(data_source: str, timeframe: str, data_to: int | None, now: float, zone: str = "UTC") -> str:
    """'binance · 1h candles to 14:00 UTC': the source and when its newest ranked candle closed
    (with the date unless that is today), in the viewer's zone with its offset (UTC+01:00)."""
    name = source_name(data_source)
    if not data_to:
        return name
    closed, today = (
        datetime.fromtimestamp(t, timezone.utc).astimezone(zone_of(zone)) for t in (data_to, now)
    )
    when = closed.strftime("%H:%M" if closed.date() == today.date() else "%Y-%m-%d %H:%M")
    return f"{name} · {timeframe} candles to {when} {offset_label(closed)}"


@dataclass(frozen=True)
class RankedMarket:
    rank: int
    symbol: str
    score: float
    indicators: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StepOutcome:
    """What one strategy step produced; `commit_step` stores it."""

    state: Mapping[str, Any]
    progress: float
    confidence: float
    done: bool
    result: list
    note: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    chain: str
    attempt: str
    worker: str
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class Gist:
    """An analysis document as read from Redis."""

    id: str
    owner: str
    status: Status
    reason: str
    seq: int
    progress: float
    confidence: float
    target: float
    config: RankingConfig
    state: SharedState
    result: list[RankedMarket]
    note: str
    version: int
    refine_gen: int
    model: str
    demo: bool
    created_at: float
    updated_at: float
    last_progress_at: float
    watchdog_attempts: int
    halt: str = ""  # a Halt: 'user', 'stuck' / 'control_expired' (the watchdog), 'maintenance' (a deploy)
    # What the LLM judge spent (calls, prompt_tokens, completion_tokens, retries, cache_hits),
    # counted when spent, failed and redone steps included (ADD_SPEND).
    spend: dict[str, int] = field(default_factory=dict)
    # A run of a schedule: its id, and the schedule's previous completed run (analysis/schedules/model.py).
    schedule: str = ""
    schedule_prev: str = ""

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> "Gist":
        F = GistField
        return cls(
            id=raw[F.ID],
            owner=raw[F.OWNER],
            status=Status(raw[F.STATUS]),
            reason=raw.get(F.REASON, ""),
            seq=int(raw[F.SEQ]),
            progress=float(raw[F.PROGRESS]),
            confidence=float(raw[F.CONFIDENCE]),
            target=float(raw[F.TARGET]),
            config=RankingConfig.model_validate_json(raw[F.CONFIG]),
            state=json.loads(raw.get(F.STATE) or "{}"),
            result=[RankedMarket(**item) for item in json.loads(raw.get(F.RESULT) or "[]")],
            note=raw.get(F.NOTE, ""),
            version=int(raw[F.VERSION]),
            refine_gen=int(raw.get(F.REFINE_GEN, 0)),
            model=raw.get(F.MODEL, ""),
            demo=raw.get(F.DEMO) == "1",
            created_at=float(raw[F.CREATED_AT]),
            updated_at=float(raw[F.UPDATED_AT]),
            last_progress_at=float(raw.get(F.LAST_PROGRESS_AT, raw[F.UPDATED_AT])),
            watchdog_attempts=int(raw.get(F.WATCHDOG_ATTEMPTS, 0)),
            halt=raw.get(F.HALT, ""),
            spend={
                name[len(SPEND_PREFIX) :]: int(value)
                for name, value in raw.items()
                if name.startswith(SPEND_PREFIX)
            },
            schedule=raw.get(F.SCHEDULE, ""),
            schedule_prev=raw.get(F.SCHEDULE_PREV, ""),
        )

    def source_label(self, now: float | None = None, zone: str = "UTC") -> str:
        """Where the ranked candles come from, e.g. 'binance · 1h candles to 14:00 UTC'."""
        return source_label(
            self.config.data_source,
            self.config.timeframe,
            self.config.candles_to,
            time.time() if now is None else now,
            zone,
        )

    @property
    def short_id(self) -> str:
        return self.id[:6]

    @property
    def leaders(self) -> list[str]:
        return list(self.state.get("leaders") or [])

    @property
    def comparisons(self) -> int | None:
        """llm strategy: comparisons made so far; None for other strategies."""
        return len(self.state["log"]) if "log" in self.state else None

    @property
    def p_in_top_k(self) -> dict[str, float]:
        """Each market's chance of being in the top K: score, the share of views in which it ranks
        there; llm, its posterior probability under the judge's answers."""
        if "estimate" in self.state:
            return dict(self.state["estimate"].get("p_in_top_k") or {})
        return dict(self.state.get("p_in_top_k") or {})

    def llm_summary(self) -> str:
        """llm strategy: comparisons made and what the judge cost; '' for other strategies or
        before any comparison. (Not P(exact top K): it reads high, docs/ranking.md.)"""
        if self.comparisons is None:
            return ""
        spend = self.spend
        log, size = self.state.get("log", []), self.state.get("list_size", 2)
        answers = f"{len(log)} orders of {size}" if size > 2 else f"{len(log)} comparisons"
        line = f"{answers} · {spend.get('calls', 0)} LLM calls"
        if spend.get("retries"):
            line += f" ({spend['retries']} retries)"
        tokens = spend.get("prompt_tokens", 0) + spend.get("completion_tokens", 0)
        if tokens:
            line += f" · {tokens:,} tokens"
        return line


@dataclass(frozen=True)
class ActionResult:
    """What a service action did: `changed` is False when it did nothing, and `message` says why;
    `already` is True when nothing was done because the analysis already is as asked (an
    idempotent no-op such as "Already paused.")."""

    action: str
    analysis_id: str
    changed: bool
    message: str
    gist: Gist | None = None
    already: bool = False


def to_jsonable(gist: Gist, history: list[HistoryEntry], chain: str | None) -> dict[str, Any]:
    """The document `marketrank status --json` prints."""
    return {
        "id": gist.id,
        "owner": gist.owner,
        "status": gist.status.value,
        "reason": gist.reason,
        "note": gist.note,
        "progress": gist.progress,
        "seq": gist.seq,
        "chain": chain,
        "confidence": gist.confidence,
        "target_confidence": gist.target,
        "refine_generation": gist.refine_gen,
        "model": gist.model,
        "demo_data": gist.demo,
        "config": gist.config.model_dump(),
        # Where the candles come from, and when the newest ranked one closed.
        "source": {
            "name": gist.config.data_source,
            "label": gist.source_label(),
            "candles_to": (
                datetime.fromtimestamp(gist.config.candles_to, timezone.utc)
                .isoformat()
                .replace("+00:00", "Z")
                if gist.config.candles_to
                else None
            ),
        },
        "history": [asdict(entry) for entry in history],
        "result": [asdict(item) for item in gist.result],
        # llm strategy: what the judge spent, and the comparisons in the log.
        "stats": {**gist.spend, "comparisons": gist.comparisons} if gist.comparisons is not None else {},
    }
