"""Exchange candle rows -> a clean frame of closed candles, deliberately (docs/live-data.md).

- A row that is not `[time, open, high, low, close, volume]` with finite numbers, positive
  prices, high >= low and volume >= 0 makes the whole answer malformed (`MalformedAnswer`): it is
  asked again (bounded), never ranked, never cached.
- Candles that open after the newest closed one (the still-open candle an exchange returns last)
  are dropped: only closed candles are ranked.
- Duplicate open times: the last row wins (a later page, or an exchange correcting a candle).
- Gaps (no row for an open time between the first candle and the newest closed one, e.g. an
  exchange outage or a halted market) are filled flat: open = high = low = close = the previous
  close, volume 0, as freqtrade does. Such candles and real zero-volume candles count as
  "thin"; a market whose window is thinner than MAX_THIN_SHARE is not ranked.
"""

import math

import numpy as np
import pandas as pd

from analysis.markets.base import OHLCV_COLUMNS


class MalformedAnswer(ValueError):
    """An exchange answer that is not what the API promises (retried like a network fault)."""


def check_rows(rows: object, what: str) -> list[list[float]]:
    """The rows as numbers, or MalformedAnswer saying which row is wrong and how."""
    if not isinstance(rows, list):
        raise MalformedAnswer(f"{what}: the answer is not a list of candles")
    checked = []
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) < 6:
            raise MalformedAnswer(f"{what}: candle row {i} is not [time, open, high, low, close, volume]")
        try:
            values = [float(v) for v in row[:6]]
        except (TypeError, ValueError):
            raise MalformedAnswer(f"{what}: candle row {i} holds a non-number") from None
        t, o, h, low, c, v = values
        if not all(math.isfinite(x) for x in values):
            raise MalformedAnswer(f"{what}: candle row {i} holds a non-finite number")
        if min(o, h, low, c) <= 0 or v < 0 or h < low or t <= 0:
            raise MalformedAnswer(f"{what}: candle row {i} has impossible prices or volume")
        checked.append(values)
    return checked


def frame_from_rows(rows: list[list[float]], since_s: int, until_s: int) -> pd.DataFrame:
    """Rows (open time in ms) opening in [since_s, until_s] as a frame; duplicates: last wins."""
    if not rows:
        return empty_frame()
    data = np.asarray(rows, dtype=float)[:, :6]
    times = (data[:, 0] // 1000).astype("int64")
    keep = (times >= since_s) & (times <= until_s)
    index = pd.DatetimeIndex(pd.to_datetime(times[keep], unit="s", utc=True), name="timestamp")
    frame = pd.DataFrame(data[keep, 1:6], columns=OHLCV_COLUMNS, index=index)
    frame = frame[~frame.index.duplicated(keep="last")]
    return frame.sort_index()


def fill_gaps(frame: pd.DataFrame, step_s: int, until_s: int) -> pd.DataFrame:
    """Every open time from the first candle to `until_s`, missing ones filled flat (volume 0)."""
    if frame.empty:
        return frame
    grid = pd.date_range(
        frame.index[0],
        pd.Timestamp(until_s, unit="s", tz="UTC"),
        freq=pd.Timedelta(seconds=step_s),
        name="timestamp",
    )
    if len(grid) == len(frame) and grid.equals(frame.index):
        return frame
    full = frame.reindex(grid)
    close = full["close"].ffill()
    for col in ("open", "high", "low", "close"):
        full[col] = full[col].fillna(close)
    full["volume"] = full["volume"].fillna(0.0)
    return full


def empty_frame() -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name="timestamp")
    return pd.DataFrame({col: pd.Series([], dtype=float) for col in OHLCV_COLUMNS}, index=index)
