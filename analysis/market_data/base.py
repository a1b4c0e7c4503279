"""The market-data provider interface and the provider chosen by the `MARKET_DATA` setting."""

from functools import lru_cache
from typing import Protocol

import pandas as pd

from analysis.errors import InvalidConfig

OHLCV_COLUMNS = ["open", "high", "low", "close", "volume"]
TIMEFRAMES = {"5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}


class MarketDataProvider(Protocol):
    """Candles by symbol ('BTC/USDT') and timeframe; frames are indexed by UTC open time."""

    name: str
    is_demo: bool

    def list_markets(self, timeframe: str) -> list[str]: ...

    def candles(self, symbol: str, timeframe: str, limit: int) -> pd.DataFrame:
        """The last `limit` candles (fewer if the source has fewer), columns OHLCV_COLUMNS."""
        ...


@lru_cache(maxsize=16)
def provider_from_spec(spec: str) -> MarketDataProvider:
    """`demo` or `csv:<dir>` (one shared instance per spec, so its candle cache is shared);
    anything else is refused with the accepted forms. `faulty:<rate>:<spec>` wraps a provider
    with injected failures, for chaos runs and recovery tests (analysis/market_data/faults.py)."""
    from analysis.market_data.csv_dir import CsvDirProvider
    from analysis.market_data.demo import DemoProvider

    if spec == "demo":
        return DemoProvider()
    if spec.startswith("csv:") and len(spec) > 4:
        return CsvDirProvider(spec[4:])
    if spec.startswith("faulty:"):
        from analysis.market_data.faults import faulty_provider
        return faulty_provider(spec)
    raise InvalidConfig(f"MARKET_DATA={spec!r} is not a data source: use 'demo' or 'csv:<dir>'")
