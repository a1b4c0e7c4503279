"""The candles a live source has already cached in Redis, as a read-only market-data provider:
what `marketrank backtest --source ccxt:<exchange>` replays.

It never asks the exchange (no ccxt client is built, no request is made): a backtest reads
thousands of candles per market and must not hammer the exchange, so it replays what the live
analyses' shared candle cache (candle_cache.py) holds and nothing more.
"""

import pandas as pd

from analysis.errors import InvalidConfig
from analysis.markets.base import TIMEFRAMES, volumes_from_candles
from analysis.markets.candle_cache import CandleCache


class CacheReader:
    is_demo = False
    remote = False  # reads Redis only

    def __init__(self, cache: CandleCache, name: str, label: str):
        self.cache, self.name, self.label = cache, name, label

    def list_markets(self, timeframe: str) -> list[str]:
        if timeframe not in TIMEFRAMES:
            raise InvalidConfig(f"unknown timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}")
        return self.cache.stored_markets(timeframe)

    def market_volumes(self, timeframe: str) -> list[tuple[str, float]]:
        return volumes_from_candles(self, timeframe)

    def check_symbols(self, symbols: list[str]) -> None:
        # Any timeframe's series makes a symbol known; the backtest says when the asked one is short.
        known = {s for timeframe in TIMEFRAMES for s in self.cache.stored_markets(timeframe)}
        unknown = [s for s in symbols if s not in known]
        if unknown:
            raise InvalidConfig(
                f"unknown symbol {', '.join(unknown[:5])}: the candle cache of "
                f"{self.name} holds none of its candles (a backtest never asks "
                "the exchange; an analysis of the market fills the cache)"
            )

    def candles(self, symbol: str, timeframe: str, limit: int) -> pd.DataFrame:
        return self.cache.stored(symbol, timeframe).iloc[-limit:]
