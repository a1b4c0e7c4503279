"""The market-data provider interface and the constants every provider shares."""

from typing import Protocol

import pandas as pd

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
