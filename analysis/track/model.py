"""What the track record is made of: an immutable pick record per completed ranking, the metrics
one record earns at one horizon, and the summary of many records.

A record is the only input of the track record: it holds the WHOLE universe as ranked at `t`
(every market, its score and rank, rank 1 = best), so a market delisted later stays in it (no
survivorship), and a replayed record and a live one have the same shape.
"""

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from analysis.errors import AnalysisError

MIN_INDEPENDENT = 30  # below this many independent records the answer is "not enough history yet"


class BadRecord(AnalysisError):
    """A stored or received record cannot be read; the message says which field is wrong."""


class Ranked(NamedTuple):
    """One market of a record's universe."""

    symbol: str
    score: float
    rank: int  # 1 = best


@dataclass(frozen=True)
class PickRecord:
    """One ranking as it stood at decision time `t`."""

    t: int  # ms UTC: close time of the last closed candle ranked
    timeframe: str  # '1h'...
    source: str  # the data source's label: demo, csv, binance
    strategy: str  # 'score', 'llm', or a baseline's name
    model: str | None  # the judge's model for llm, else None
    k: int  # the top K the trader asked for
    analysis_id: str  # '' for a replayed record
    schedule_id: str | None
    universe: tuple[Ranked, ...]  # every ranked market, by rank (1 first)

    def top(self, k: int | None = None) -> list[str]:
        """The first `k` (default the record's K) symbols, best first."""
        return [m.symbol for m in self.universe[: self.k if k is None else k]]

    def symbols(self) -> list[str]:
        return [m.symbol for m in self.universe]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["universe"] = [{"symbol": m.symbol, "score": m.score, "rank": m.rank} for m in self.universe]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> "PickRecord":
        """Read a record back, checking every field (BadRecord names the first wrong one)."""
        if not isinstance(data, dict):
            raise BadRecord("a pick record must be a JSON object")
        try:
            universe = tuple(
                Ranked(str(m["symbol"]), float(m["score"]), int(m["rank"])) for m in data["universe"]
            )
            record = cls(
                t=int(data["t"]),
                timeframe=str(data["timeframe"]),
                source=str(data["source"]),
                strategy=str(data["strategy"]),
                model=None if data.get("model") is None else str(data["model"]),
                k=int(data["k"]),
                analysis_id=str(data["analysis_id"]),
                schedule_id=(None if data.get("schedule_id") is None else str(data["schedule_id"])),
                universe=universe,
            )
        except KeyError as exc:
            raise BadRecord(f"a pick record lacks the field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise BadRecord(f"a pick record has a field of the wrong type ({exc})") from exc
        record.check()
        return record

    @classmethod
    def from_json(cls, text: str | bytes) -> "PickRecord":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BadRecord(f"a pick record is not valid JSON ({exc})") from exc
        return cls.from_dict(data)

    def check(self) -> None:
        """Refuse a record whose ranks are not 1..n in order or whose K does not fit."""
        if [m.rank for m in self.universe] != list(range(1, len(self.universe) + 1)):
            raise BadRecord("a pick record's universe must be ranked 1..n in order")
        if len({m.symbol for m in self.universe}) != len(self.universe):
            raise BadRecord("a pick record names a market twice")
        if not 1 <= self.k <= len(self.universe):
            raise BadRecord(f"a pick record's K ({self.k}) must be within 1..{len(self.universe)}")
        if self.t <= 0:
            raise BadRecord("a pick record's t must be a positive time in ms")


@dataclass(frozen=True)
class RecordMetrics:
    """What one record earned at one horizon (returns are fractions: 0.01 = +1%)."""

    t: int
    horizon: int  # bars after the entry bar
    ic: float  # Spearman(ranking best first, r) across the universe
    top_k_excess: float  # mean r of the top K minus the universe's mean r
    hit_rate: float  # share of the top K whose r is above the universe median
    top_minus_bottom: float  # mean r of the top quintile minus the bottom quintile's
    turnover: float | None  # share of the top K not in the previous record's top K
    flagged: tuple[str, ...] = ()  # markets without a candle at the exit (last close used)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["flagged"] = list(self.flagged)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RecordMetrics":
        try:
            return cls(
                t=int(data["t"]),
                horizon=int(data["horizon"]),
                ic=float(data["ic"]),
                top_k_excess=float(data["top_k_excess"]),
                hit_rate=float(data["hit_rate"]),
                top_minus_bottom=float(data["top_minus_bottom"]),
                turnover=None if data.get("turnover") is None else float(data["turnover"]),
                flagged=tuple(str(s) for s in data.get("flagged", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRecord(f"record metrics cannot be read ({exc!r})") from exc


@dataclass(frozen=True)
class Summary:
    """One metric over many records at one horizon, with a 95% interval that respects overlap."""

    metric: str  # 'ic', 'top_k_excess', 'hit_rate', 'top_minus_bottom'
    horizon: int
    mean: float
    ci95_low: float
    ci95_high: float
    icir: float | None  # for 'ic': mean / std of the per-record ICs (ICIR); else None
    n: int  # records
    n_independent: int  # records at least `horizon` bars apart (what the interval uses)
    method: str  # how the interval was made (see aggregate.py)
    enough: bool  # n_independent >= MIN_INDEPENDENT

    def status(self) -> str:
        """'' when there is enough history, else the line a trader is shown."""
        if self.enough:
            return ""
        return f"not enough history yet ({self.n_independent} of {MIN_INDEPENDENT})"

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()
        }
