"""The market-data provider interface and the constants every provider shares."""

from typing import Protocol

import pandas as pd

OHLCV_COLUMNS = ["open", "high", "low", "close", "volume"]
TIMEFRAMES = {"5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}


class MarketDataProvider(Protocol):
    """Candles by symbol ('BTC/USDT') and timeframe; frames are indexed by UTC open time and hold
    closed candles only."""

    name: str  # what configs record: demo, csv:<dir>, ccxt:<exchange>
    label: str  # what cards show: demo, csv, binance
    is_demo: bool
    remote: bool  # candles come over the network: choosing and checking markets may take seconds

    def list_markets(self, timeframe: str) -> list[str]: ...

    def market_volumes(self, timeframe: str) -> list[tuple[str, float]]:
        """The markets an analysis may pick, most traded first, with their 24 h quote volume."""
        ...

    def check_symbols(self, symbols: list[str]) -> None:
        """Refuse (InvalidConfig, naming them) symbols the source does not have or that do not
        trade; writes nothing."""
        ...

    def candles(self, symbol: str, timeframe: str, limit: int) -> pd.DataFrame:
        """The last `limit` candles (fewer if the source has fewer), columns OHLCV_COLUMNS."""
        ...


def volumes_from_candles(provider: MarketDataProvider, timeframe: str) -> list[tuple[str, float]]:
    """Quote volume over the last day of candles (close x volume), most traded first: for
    sources without tickers (demo, csv)."""
    per_day = max(1, 86400 // TIMEFRAMES[timeframe])
    volumes = {}
    for symbol in provider.list_markets(timeframe):
        recent = provider.candles(symbol, timeframe, per_day)
        volumes[symbol] = float((recent["close"] * recent["volume"]).sum())
    return sorted(volumes.items(), key=lambda item: (-item[1], item[0]))


def thin_share(frame: pd.DataFrame) -> float:
    """Share of candles without trades (zero volume: a quiet market, or a gap the source left,
    which providers fill flat with zero volume)."""
    return float((frame["volume"] <= 0).mean()) if len(frame) else 1.0


def window_problem(
    symbol: str, window: pd.DataFrame, timeframe: str, needed: int, max_thin: float
) -> str | None:
    """Why `window` (the candles an analysis would rank) cannot be ranked, or None."""
    if len(window) < needed:
        return f"{symbol} has only {len(window)} {timeframe} candles; at least {needed} are needed"
    share = thin_share(window)
    if share > max_thin:
        return (
            f"{symbol} had no trades in {share:.0%} of its last {len(window)} {timeframe} "
            f"candles (gaps or zero volume); the limit is {max_thin:.0%}"
        )
    return None
