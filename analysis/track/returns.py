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

import numpy as np
import pandas as pd

from analysis.markets.base import TIMEFRAMES
from analysis.track.model import PickRecord


@dataclass(frozen=True)
class ForwardReturns:
    """The universe's returns of one record at one horizon."""

    horizon: int
    returns: dict[str, float]  # symbol -> r, for every market of the record
    flagged: tuple[str, ...]   # markets priced from their last close before the entry or exit


def exit_close_ms(t: int, timeframe: str, horizon: int) -> int:
    """When the exit bar of a record decided at `t` (ms) closes: t + (1 + h) bars."""
    return t + (1 + horizon) * TIMEFRAMES[timeframe] * 1000


def is_complete(record: PickRecord, horizon: int, known_until: int) -> bool:
    """True when every candle up to the exit bar had closed by `known_until` (ms UTC)."""
    return exit_close_ms(record.t, record.timeframe, horizon) <= known_until


def forward_returns(record: PickRecord, candles: Mapping[str, pd.DataFrame],
                    horizons: Iterable[int], known_until: int) -> dict[int, ForwardReturns]:
    """The returns at each horizon whose exit bar closed by `known_until` (ms UTC); a horizon not
    complete yet is left out (the caller retries later). A market of the universe missing from
    `candles` altogether is priced flat (r = 0) and flagged."""
    step_ms = TIMEFRAMES[record.timeframe] * 1000
    entry_open = record.t  # bar t+1 opens when bar t closes
    done = {}
    for h in horizons:
        if not is_complete(record, h, known_until):
            continue
        exit_open = entry_open + h * step_ms
        returns, flagged = {}, []
        for symbol in record.symbols():
            entry, entry_exact = close_at(candles.get(symbol), entry_open)
            exit_, exit_exact = close_at(candles.get(symbol), exit_open)
            if not (entry_exact and exit_exact):
                flagged.append(symbol)
            returns[symbol] = exit_ / entry - 1.0 if np.isfinite(entry) and entry > 0 else 0.0
            if not np.isfinite(returns[symbol]):
                returns[symbol] = 0.0
        done[h] = ForwardReturns(horizon=h, returns=returns, flagged=tuple(flagged))
    return done


def close_at(frame: pd.DataFrame | None, open_ms: int) -> tuple[float, bool]:
    """The close of the candle opening at `open_ms`, and whether that candle exists; else the last
    close before it (False), or NaN when the market has no candle before it at all."""
    if frame is None or frame.empty:
        return float("nan"), False
    opens = frame.index.as_unit("ms").asi8
    i = int(np.searchsorted(opens, open_ms, side="right")) - 1
    if i < 0:
        return float("nan"), False
    return float(frame["close"].iloc[i]), bool(opens[i] == open_ms)
