"""What the fronts ask of the track record (the bot's /track and card line, `marketrank track`):
the table per (strategy, timeframe, source) and horizon with the baselines beside it, the series
a chart draws, and the lines a completed card shows. Reads only; the evaluation pass writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from analysis.db.keys import Keys
from analysis.errors import InvalidConfig, quoted
from analysis.markets.base import TIMEFRAMES
from analysis.models import Gist, Status, source_name
from analysis.track.aggregate import METHOD, summarize
from analysis.track.baselines import BASELINES, random_intervals
from analysis.track.live_records import strategy_label
from analysis.track.model import MIN_INDEPENDENT, PickRecord, Summary
from analysis.track.record_store import RecordStore, StoredRecord, group_name, record_id
from analysis.track.returns import ForwardReturns

SHOWN = ("ic", "top_k_excess", "hit_rate")
STRATEGIES = ("score", "llm", "score-exit", "llm-exit")


def parse_filters(words: list[str]) -> tuple[str | None, str | None]:
    """`[strategy] [timeframe]` in any order, e.g. ['llm', '4h']; InvalidConfig saying what is
    accepted for anything else."""
    strategy = timeframe = None
    if len(words) > 2:
        raise InvalidConfig("give at most a strategy and a timeframe, e.g. score 1h")
    for word in words:
        name = word.strip().lower()
        if name in TIMEFRAMES and timeframe is None:
            timeframe = name
        elif name in STRATEGIES and strategy is None:
            strategy = name
        else:
            raise InvalidConfig(
                f"{quoted(word)} is neither a strategy ({', '.join(STRATEGIES)}) "
                f"nor a timeframe ({', '.join(TIMEFRAMES)})"
            )
    return strategy, timeframe


@dataclass(frozen=True)
class HorizonRow:
    """One horizon of a group: the strategy's summaries, the baselines' top-K excess, and the
    random K's permutation interval of the top-K excess."""

    horizon: int
    strategy: dict[str, Summary]
    baselines: dict[str, Summary]
    random: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            **{name: s.to_dict() for name, s in self.strategy.items()},
            "baselines": {name: s.to_dict() for name, s in self.baselines.items()},
            "random_top_k_excess_95": list(self.random) if self.random else None,
        }


@dataclass(frozen=True)
class GroupTrack:
    """The track record of one (strategy, timeframe, source)."""

    strategy: str
    timeframe: str
    source: str
    k: int  # the newest record's K
    records: int  # pick records kept
    scored: int  # ... with at least one horizon scored
    rows: list[HorizonRow]
    series: dict[int, dict[str, list[float]]] = field(default_factory=dict)  # per horizon, for charts

    @property
    def title(self) -> str:
        return f"{self.strategy} · {self.timeframe} · {self.source}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "timeframe": self.timeframe,
            "source": self.source,
            "top_k": self.k,
            "records": self.records,
            "scored_records": self.scored,
            "min_independent": MIN_INDEPENDENT,
            "interval_method": METHOD,
            "horizons": [row.to_dict() for row in self.rows],
        }


def duration(seconds: int) -> str:
    """24h, 4d, 45m: the horizon in time."""
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


def percent(x: float) -> str:
    return f"{x * 100:+.2f}%"


class TrackService:
    def __init__(self, client: redis.Redis, keys: Keys, *, retention_days: int, horizons: list[int]):
        self.store = RecordStore(client, keys, retention_days=retention_days)
        self.horizons = horizons

    # --- the table ----------------------------------------------------------------------------
    def groups(self, strategy: str | None = None, timeframe: str | None = None) -> list[str]:
        """Groups with records, those of `strategy` and `timeframe` when given; the one that got
        a record last comes first (what the trader has just been running)."""
        found = []
        for group in self.store.groups():
            g_strategy, g_timeframe, _ = group.split("|", 2)
            if (strategy is None or g_strategy == strategy) and (
                timeframe is None or g_timeframe == timeframe
            ):
                found.append(group)
        written = self.store.last_written(found)
        return sorted(found, key=lambda g: (-written[g], g))

    def group_track(
        self, group: str, horizons: list[int] | None = None, *, baselines: bool = True
    ) -> GroupTrack | None:
        """The group's table (and chart series) at `horizons` (default all); without the
        baselines for the card line, which needs one horizon's figures only."""
        ids = self.store.group_ids(group)
        stored = self.store.get_many(ids)
        if not stored:
            return None
        results = self.store.results_many([s.id for s in stored])
        strategy, timeframe, source = group.split("|", 2)
        rows, series = [], {}
        for h in horizons or self.horizons:
            scored = [(s.record, r[h]) for s, r in zip(stored, results) if h in r]
            if not scored:
                continue
            rows.append(horizon_row(scored, h, timeframe, baselines))
            series[h] = {
                "t": [float(rec.t) for rec, _ in scored],
                "ic": [res["score"]["ic"] for _, res in scored],
                "top_k_excess": [res["score"]["top_k_excess"] for _, res in scored],
                **{name: [res[name]["top_k_excess"] for _, res in scored] for name in BASELINES},
            }
        return GroupTrack(
            strategy,
            timeframe,
            source,
            stored[-1].record.k,
            len(stored),
            sum(1 for r in results if r),
            rows,
            series,
        )

    def tracks(self, strategy: str | None = None, timeframe: str | None = None) -> list[GroupTrack]:
        return [t for t in (self.group_track(g) for g in self.groups(strategy, timeframe)) if t]

    # --- the completed card ---------------------------------------------------------------------
    def card_line(self, gist: Gist) -> str:
        """'Track record (score · 1h · 24h ahead, 212 picks): top 10 beat the universe by
        +0.41% ± 0.30%; IC 0.05', or 'not enough history yet (12 of 30)'."""
        config = gist.config
        if gist.demo:
            return (
                "Track record: none on demo data (its candles end at a fixed moment, so no "
                "pick is ever scored)"
            )
        group = group_name(strategy_label(config), config.timeframe, source_name(config.data_source))
        h = max(self.horizons)
        ahead = duration(h * TIMEFRAMES[config.timeframe])
        track = self.group_track(group, [h], baselines=False)
        row = next((r for r in track.rows if r.horizon == h), None) if track else None
        head = f"Track record ({strategy_label(config)} · {config.timeframe} · {ahead} ahead"
        if row is None:
            return f"{head}): not enough history yet (0 of {MIN_INDEPENDENT})"
        excess, ic = row.strategy["top_k_excess"], row.strategy["ic"]
        head += f", {excess.n} picks)"
        if not excess.enough:
            return f"{head}: {excess.status()}"
        half = (excess.ci95_high - excess.ci95_low) / 2
        k = config.top_k
        if excess.ci95_low > 0:
            said = f"top {k} beat the universe by {percent(excess.mean)} ± {percent(half)[1:]}"
        elif excess.ci95_high < 0:
            said = f"top {k} trailed the universe by {percent(excess.mean)} ± {percent(half)[1:]}"
        else:
            said = f"no edge shown: top {k} vs the universe {percent(excess.mean)} ± {percent(half)[1:]}"
        return f"{head}: {said}; IC {ic.mean:.2f}"

    def previous_run_line(self, gist: Gist) -> str:
        """A scheduled run: how the schedule's previous top K did since its decision ('' if
        there is no earlier record, or too little time passed)."""
        if not gist.schedule or gist.status != Status.COMPLETED:
            return ""
        stored = self.store.get(record_id(gist.id, gist.seq))
        since = stored.extra.get("since_previous") if stored else None
        if not since:
            return ""
        gone = f" ({len(since['missing'])} without candles)" if since["missing"] else ""
        return (
            f"previous top {since['k']}: {percent(since['top_k'])}, universe "
            f"{percent(since['universe'])}{gone}"
        )

    def card_lines(self, gist: Gist) -> list[str]:
        """What a completed card adds: the track record line, and for a scheduled run how the
        previous run's top K did since."""
        if gist.status != Status.COMPLETED:
            return []
        return [line for line in (self.card_line(gist), self.previous_run_line(gist)) if line]

    def record_of(self, gist: Gist) -> StoredRecord | None:
        return self.store.get(record_id(gist.id, gist.seq))


def horizon_row(
    scored: list[tuple[PickRecord, dict]], h: int, timeframe: str, baselines: bool = True
) -> HorizonRow:
    times = [rec.t for rec, _ in scored]
    strategy = {
        name: summarize(
            [res["score"][name] for _, res in scored], times, metric=name, horizon=h, timeframe=timeframe
        )
        for name in SHOWN
    }
    if not baselines:
        return HorizonRow(h, strategy, {}, None)
    beside = {
        name: summarize(
            [res[name]["top_k_excess"] for _, res in scored],
            times,
            metric="top_k_excess",
            horizon=h,
            timeframe=timeframe,
        )
        for name in BASELINES
    }
    returns = [ForwardReturns(h, dict(zip(rec.symbols(), res["returns"])), ()) for rec, res in scored]
    random = random_intervals([rec for rec, _ in scored], returns)["top_k_excess"] if scored else None
    return HorizonRow(h, strategy, beside, random)
