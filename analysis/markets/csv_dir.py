"""Candles from a folder of CSV files named `<BASE>_<QUOTE>-<timeframe>.csv`.

Columns `timestamp,open,high,low,close,volume`, ISO-8601 UTC timestamps (the format of freqtrade
exports converted to CSV, and of ../shared/data/ohlcv-binance-1h/). Files are read once and cached.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import DataUnavailable, InvalidConfig
from analysis.markets.base import OHLCV_COLUMNS, TIMEFRAMES, volumes_from_candles


class CsvDirProvider:
    is_demo = False
    remote = False

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.name = f"csv:{self.folder}"
        self.label = "csv"

    def market_volumes(self, timeframe: str) -> list[tuple[str, float]]:
        return volumes_from_candles(self, timeframe)

    def check_symbols(self, symbols: list[str]) -> None:
        # Any timeframe's file makes a symbol known; candles() says when the asked one is missing.
        known = {p.name.split("-", 1)[0].replace("_", "/", 1) for p in self.folder.glob("*_*-*.csv")}
        unknown = [s for s in symbols if s not in known]
        if unknown:
            raise InvalidConfig(f"unknown symbol {', '.join(unknown[:5])}: no candles in {self.folder}")

    def _file(self, symbol: str, timeframe: str) -> Path:
        return self.folder / f"{symbol.replace('/', '_')}-{timeframe}.csv"

    def list_markets(self, timeframe: str) -> list[str]:
        if timeframe not in TIMEFRAMES:
            raise InvalidConfig(f"unknown timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}")
        if not self.folder.is_dir():
            raise DataUnavailable(f"market data folder {self.folder} does not exist")
        suffix = f"-{timeframe}.csv"
        names = sorted(p.name[: -len(suffix)] for p in self.folder.glob(f"*{suffix}"))
        return [name.replace("_", "/", 1) for name in names if "_" in name]

    def candles(self, symbol: str, timeframe: str, limit: int) -> pd.DataFrame:
        path = self._file(symbol, timeframe)
        if not path.is_file():
            raise InvalidConfig(f"unknown symbol {symbol}: no {timeframe} candles in {self.folder}")
        return read_candles_csv(path).iloc[-limit:]


@lru_cache(maxsize=256)
def read_candles_csv(path: Path) -> pd.DataFrame:
    """Read and check one file; a malformed file is refused with what is wrong in it."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataUnavailable(f"{path.name}: cannot be read ({exc})") from exc
    missing = [c for c in ["timestamp", *OHLCV_COLUMNS] if c not in frame.columns]
    if missing:
        raise DataUnavailable(f"{path.name}: missing column(s) {', '.join(missing)}")
    try:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        values = frame[OHLCV_COLUMNS].astype(float)
    except (ValueError, TypeError) as exc:
        raise DataUnavailable(f"{path.name}: a timestamp or price is not a valid value ({exc})") from exc
    if not np.isfinite(values.to_numpy()).all():
        raise DataUnavailable(f"{path.name}: contains empty or non-numeric prices")
    values.index = pd.DatetimeIndex(frame["timestamp"], name="timestamp")
    if not values.index.is_monotonic_increasing:
        values = values.sort_index()
    return values
