"""The evaluation pass (Celery beat, tasks/track_tasks.py): scores the pick records whose horizons
have closed, from closed candles only, and prunes records past their retention.

Candles come from the record's own data source (`provider_from_spec`): the shared candle cache for
live sources (one read per market and timeframe per pass, whatever the number of records that
need it, within the exchange's rate limit), the files for `csv:`. A horizon is scored only when
every market of the universe has its candle at the exit; a market still without one `MISSING_GRACE_BARS`
after the exit closed (delisted, halted) is priced at its last close and flagged, as returns.py
does. Otherwise the record is looked at again later: never scored on partial data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.markets.base import TIMEFRAMES
from analysis.markets.registry import provider_from_spec
from analysis.track.baselines import BASELINES, TRAILING_BARS, ranked_by, trailing_series
from analysis.track.metrics import record_metrics
from analysis.track.record_store import RecordStore, StoredRecord
from analysis.track.returns import Closes, closes_of, exit_close_ms, forward_returns_of

logger = logging.getLogger(__name__)
MISSING_GRACE_BARS = 24
MAX_RETRY_S = 86400
MAX_BARS_READ = 5000  # the candle cache keeps about this many per market
# (data source, symbol, timeframe, candles wanted) -> closed candles, or None when unavailable
ReadCandles = Callable[[str, str, str, int], pd.DataFrame | None]


def read_from_source(data_source: str, symbol: str, timeframe: str, limit: int) -> pd.DataFrame | None:
    """The newest `limit` closed candles of a market from its source; None when it has none."""
    try:
        return provider_from_spec(data_source).candles(symbol, timeframe, limit)
    except AnalysisError as exc:
        logger.info("track: no %s %s candles from %s (%s)", symbol, timeframe, data_source, exc)
        return None


@dataclass
class PassCounts:
    scored: int = 0  # horizons scored in this pass
    finished: int = 0  # records with every horizon scored
    waiting: int = 0  # records whose next horizon's candles are not all there yet
    pruned: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def ready_horizons(
    stored: StoredRecord, markets: dict[str, MarketData | None], horizons: list[int], now_ms: int
) -> list[int]:
    """The horizons that can be scored now: the exit bar has closed and every market has its
    candle there, or the exit closed MISSING_GRACE_BARS ago and most markets have it."""
    rec = stored.record
    step_ms = TIMEFRAMES[rec.timeframe] * 1000
    ready = []
    for h in horizons:
        exit_open = rec.t + h * step_ms
        if exit_close_ms(rec.t, rec.timeframe, h) > now_ms:
            continue
        have = sum(
            1 for s in rec.symbols() if (m := markets.get(s)) is not None and m.newest_open_ms >= exit_open
        )
        late = now_ms >= exit_close_ms(rec.t, rec.timeframe, h) + MISSING_GRACE_BARS * step_ms
        if have == len(rec.symbols()) or (late and have * 2 > len(rec.symbols())):
            ready.append(h)
    return ready


@dataclass(frozen=True)
class MarketData:
    """A market's candles reduced once per pass to what scoring reads: closes by open time, and
    the baselines' trailing values as of each candle's close (causal, baselines.trailing_series)."""

    closes: Closes
    trailing: dict[str, np.ndarray]
    newest_open_ms: int

    @classmethod
    def of(cls, frame: pd.DataFrame | None) -> "MarketData | None":
        if frame is None or not len(frame):
            return None
        trailing = trailing_series(frame)
        closes = closes_of(frame)
        return cls(
            closes,
            {name: trailing[name].to_numpy(dtype=float) for name in BASELINES},
            int(closes.opens_ms[-1]),
        )

    def baseline_at(self, name: str, t_ms: int, step_ms: int) -> float:
        """The baseline's value as of the newest candle closed by `t_ms`."""
        i = int(np.searchsorted(self.closes.opens_ms, t_ms - step_ms, side="right")) - 1
        return float(self.trailing[name][i]) if i >= 0 else float("nan")


def score_record(
    stored: StoredRecord,
    markets: dict[str, MarketData | None],
    horizons: list[int],
    now_ms: int,
    previous_top: list[str] | None,
) -> dict[int, dict]:
    """Per ready horizon: the strategy's metrics, the volume and momentum baselines' on the same
    decision, and the universe's returns (in rank order, for the random baseline)."""
    rec = stored.record
    step_ms = TIMEFRAMES[rec.timeframe] * 1000
    closes = {s: m.closes for s, m in markets.items() if m is not None}
    returns = forward_returns_of(rec, closes, horizons, now_ms)
    baselines = {
        name: ranked_by(
            rec,
            {s: m.baseline_at(name, rec.t, step_ms) if m else float("nan") for s, m in markets.items()},
            name,
        )
        for name in BASELINES
    }
    scored = {}
    for h, ret in returns.items():
        scored[h] = {
            "score": record_metrics(rec, ret, previous_top).to_dict(),
            **{name: record_metrics(b, ret).to_dict() for name, b in baselines.items()},
            "returns": [round(ret.returns[s], 6) for s in rec.symbols()],
        }
    return scored


def evaluate_due(
    store: RecordStore,
    horizons: list[int],
    now_s: float,
    *,
    retry_s: float,
    read: ReadCandles = read_from_source,
    limit: int = 500,
) -> PassCounts:
    """One pass: score what has closed among the due records, postpone the rest, prune."""
    counts = PassCounts(pruned=store.prune(now_s))
    now_ms = int(now_s * 1000)
    ids = store.due_ids(now_s, limit)
    records = {s.id: s for s in store.get_many(ids)}
    for gone in set(ids) - set(records):  # expired with its retention: nothing to score
        store.save_results(gone, {}, None)
    frames = read_candles(list(records.values()), now_ms, read)
    data = {key: MarketData.of(frame) for key, frame in frames.items()}
    for stored in records.values():
        done = set(store.results(stored.id))
        todo = [h for h in horizons if h not in done]
        mine = {
            s: data.get((stored.data_source, stored.record.timeframe, s)) for s in stored.record.symbols()
        }
        ready = ready_horizons(stored, mine, todo, now_ms)
        scored = score_record(stored, mine, ready, now_ms, previous_top(store, stored)) if ready else {}
        left = [h for h in todo if h not in scored]
        store.save_results(stored.id, scored, next_look(stored, left, now_s, retry_s))
        counts.scored += len(scored)
        counts.finished += not left
        counts.waiting += bool(left) and any(
            exit_close_ms(stored.record.t, stored.record.timeframe, h) <= now_ms for h in left
        )
        if scored:
            logger.info(
                "[%s] track record scored at %s bars (%s)",
                stored.id,
                ",".join(map(str, sorted(scored))),
                stored.group,
            )
    return counts


def next_look(stored: StoredRecord, left: list[int], now_s: float, retry_s: float) -> float | None:
    """When to look at the record again: when its next horizon closes, or after `retry_s` when
    that has closed but its candles are not all there yet; None when nothing is left."""
    if not left:
        return None
    closes = exit_close_ms(stored.record.t, stored.record.timeframe, min(left)) / 1000
    if closes > now_s:
        return closes
    # Closed but not all there: soon at first, then less often, at least daily (a source that
    # stopped, e.g. the demo data's fixed end, is not read every pass for ever).
    return now_s + max(retry_s, min((now_s - closes) / 4, MAX_RETRY_S))


def previous_top(store: RecordStore, stored: StoredRecord) -> list[str] | None:
    """The previous record of the same schedule's top K, for turnover."""
    schedule = stored.record.schedule_id
    previous_id = store.previous_of_schedule(schedule, stored.record.t) if schedule else None
    previous = store.get(previous_id) if previous_id else None
    return previous.record.top() if previous else None


def read_candles(
    records: list[StoredRecord], now_ms: int, read: ReadCandles
) -> dict[tuple[str, str, str], pd.DataFrame | None]:
    """Every market's candles the records need, read once per (source, timeframe, market): from
    TRAILING_BARS + 1 bars before the oldest decision (the baselines' look-back) to now."""
    oldest: dict[tuple[str, str, str], int] = {}
    for stored in records:
        for symbol in stored.record.symbols():
            key = (stored.data_source, stored.record.timeframe, symbol)
            oldest[key] = min(oldest.get(key, stored.record.t), stored.record.t)
    frames = {}
    for (source, timeframe, symbol), t_ms in oldest.items():
        step_ms = TIMEFRAMES[timeframe] * 1000
        bars = (now_ms - t_ms) // step_ms + TRAILING_BARS + 2
        frames[(source, timeframe, symbol)] = read(source, symbol, timeframe, int(min(bars, MAX_BARS_READ)))
    return frames
