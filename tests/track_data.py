"""Small candle sets for the track tests: hand-made CSV folders and synthetic markets."""

from pathlib import Path

import numpy as np
import pandas as pd

HOUR_MS = 3_600_000
START = pd.Timestamp("2024-01-01T00:00:00Z")


def write_csv(
    folder: Path,
    symbol: str,
    closes: list[float],
    volumes: list[float] | None = None,
    start: pd.Timestamp = START,
) -> Path:
    """One market's 1h file (open = previous close, high/low around them) in csv_dir's format."""
    close = np.asarray(closes, dtype=float)
    opens = np.r_[close[0], close[:-1]]
    volume = np.ones(len(close)) if volumes is None else np.asarray(volumes, dtype=float)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=len(close), freq="1h").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": opens,
            "high": np.maximum(opens, close) * 1.001,
            "low": np.minimum(opens, close) * 0.999,
            "close": close,
            "volume": volume,
        }
    )
    path = folder / f"{symbol.replace('/', '_')}-1h.csv"
    frame.to_csv(path, index=False)
    return path


def copy_until(source: Path, target: Path, close_ms: int) -> None:
    """Every 1h file of `source` cut to the candles closed by `close_ms` (what a live source held
    then)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*-1h.csv")):
        frame = pd.read_csv(path)
        opens = pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("ms").astype("int64")
        frame[(opens + HOUR_MS) <= close_ms].to_csv(target / path.name, index=False)
