"""Forward returns of a record's universe, entry one bar after the decision (qlib's label):

    r = close(t+1+h) / close(t+1) - 1

where bar t is the last candle the ranking saw (it closed at the record's `t`), bar t+1 is the
next one (it opens at `t`), and h is the horizon in bars. Only closed candles are used: until
the exit bar has closed (`known_until`), the record is NOT COMPLETE and gets no returns at all,
never returns from partial data. A market without a candle at the entry or the exit (delisted,
halted, a gap) uses its last close before it and is FLAGGED: counted, never dropped, so the
universe the record ranked is the universe it is scored on.

Input: `candles`, a mapping symbol -> the frame a MarketDataProvider gives (analysis/markets/
base.py): indexed by UTC open time, columns OHLCV_COLUMNS, closed candles only.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from analysis.markets.base import TIMEFRAMES
from analysis.track.model import PickRecord


@dataclass(frozen=True)
class ForwardReturns:
    """The universe's returns of one record at one horizon."""

    horizon: int
    returns: dict[str, float]  # symbol -> r, for every market of the record
    flagged: tuple[str, ...]  # markets priced from their last close before the entry or exit


def exit_close_ms(t: int, timeframe: str, horizon: int) -> int:
    """When the exit bar of a record decided at `t` (ms) closes: t + (1 + h) bars."""
    return t + (1 + horizon) * TIMEFRAMES[timeframe] * 1000


def is_complete(record: PickRecord, horizon: int, known_until: int) -> bool:
    """True when every candle up to the exit bar had closed by `known_until` (ms UTC)."""
    return exit_close_ms(record.t, record.timeframe, horizon) <= known_until


class Closes(NamedTuple):
    """A market's candles reduced to what returns need (built once, read for many records)."""

    opens_ms: np.ndarray  # int64, ascending
    close: np.ndarray


def closes_of(frame: pd.DataFrame) -> Closes:
    return Closes(frame.index.as_unit("ms").asi8, frame["close"].to_numpy(dtype=float))


def forward_returns(
    record: PickRecord, candles: Mapping[str, pd.DataFrame], horizons: Iterable[int], known_until: int
) -> dict[int, ForwardReturns]:
    """The returns at each horizon whose exit bar closed by `known_until` (ms UTC); a horizon not
    complete yet is left out (the caller retries later). A market of the universe missing from
    `candles` altogether is priced flat (r = 0) and flagged."""
    closes = {s: closes_of(candles[s]) for s in record.symbols() if s in candles}
    return forward_returns_of(record, closes, horizons, known_until)


def forward_returns_of(
    record: PickRecord, closes: Mapping[str, Closes], horizons: Iterable[int], known_until: int
) -> dict[int, ForwardReturns]:
    """forward_returns() over candles already reduced by closes_of()."""
    step_ms = TIMEFRAMES[record.timeframe] * 1000
    ready = [h for h in horizons if is_complete(record, h, known_until)]
    if not ready:
        return {}
    # Bar t+1 opens when bar t closes: the entry candle opens at t, the exit h bars later.
    opens = np.array([record.t] + [record.t + h * step_ms for h in ready], dtype=np.int64)
    returns: dict[int, dict[str, float]] = {h: {} for h in ready}
    flagged: dict[int, list[str]] = {h: [] for h in ready}
    for symbol in record.symbols():
        prices, exact = closes_at(closes.get(symbol), opens)
        for i, h in enumerate(ready, start=1):
            r = prices[i] / prices[0] - 1.0 if prices[0] > 0 else float("nan")
            returns[h][symbol] = float(r) if np.isfinite(r) else 0.0
            if not (exact[0] and exact[i]):
                flagged[h].append(symbol)
    return {h: ForwardReturns(horizon=h, returns=returns[h], flagged=tuple(flagged[h])) for h in ready}


def closes_at(closes: Closes | None, opens_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each open time: the close of the candle opening then and whether that candle exists;
    else the last close before it (False), or NaN when the market has no candle before it."""
    if closes is None or not len(closes.opens_ms):
        return np.full(len(opens_ms), np.nan), np.zeros(len(opens_ms), dtype=bool)
    i = np.searchsorted(closes.opens_ms, opens_ms, side="right") - 1
    found = i >= 0
    prices = np.where(found, closes.close[np.maximum(i, 0)], np.nan)
    exact = found & (closes.opens_ms[np.maximum(i, 0)] == opens_ms)
    return prices, exact
