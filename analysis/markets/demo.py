"""Deterministic synthetic markets for trying marketrank offline; always labelled as demo data.

Each market is a geometric random walk with its own volatility and slowly switching trend
regimes, seeded by its symbol and timeframe, so every run sees the same candles. The series end
at a fixed moment (DEMO_END) for the same reason.
"""

import zlib
from functools import lru_cache

import numpy as np
import pandas as pd

from analysis.errors import InvalidConfig
from analysis.markets.base import TIMEFRAMES, volumes_from_candles

DEMO_END = pd.Timestamp("2026-01-01T00:00:00Z")
DEMO_LENGTH = 3000
DEMO_BASES = (
    "BTC ETH SOL XRP DOGE ADA TRX AVAX LINK DOT TON SHIB BCH LTC NEAR UNI APT ICP ETC XLM "
    "FIL ATOM HBAR ARB OP INJ IMX STX MKR RNDR GRT SUI SEI TIA LDO AAVE RUNE ALGO FTM SAND "
    "MANA AXS EGLD THETA FLOW KAVA CRV SNX COMP ZEC DASH ENS CHZ GALA APE PEPE FLOKI BONK WLD "
    "ORDI PENDLE JUP PYTH FET AR"
).split()
DEMO_MARKETS = tuple(f"{base}/USDT" for base in DEMO_BASES)


class DemoProvider:
    name = "demo"
    label = "demo"
    is_demo = True
    remote = False

    def market_volumes(self, timeframe: str) -> list[tuple[str, float]]:
        return volumes_from_candles(self, timeframe)

    def check_symbols(self, symbols: list[str]) -> None:
        unknown = [s for s in symbols if s not in DEMO_MARKETS]
        if unknown:
            raise InvalidConfig(f"unknown symbol {', '.join(unknown[:5])}: not in the demo data")

    def list_markets(self, timeframe: str) -> list[str]:
        _check_timeframe(timeframe)
        return list(DEMO_MARKETS)

    def candles(self, symbol: str, timeframe: str, limit: int) -> pd.DataFrame:
        _check_timeframe(timeframe)
        if symbol not in DEMO_MARKETS:
            raise InvalidConfig(f"unknown symbol {symbol} in the demo data")
        return _demo_series(symbol, timeframe).iloc[-limit:]


def _check_timeframe(timeframe: str) -> None:
    if timeframe not in TIMEFRAMES:
        raise InvalidConfig(f"unknown timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}")


@lru_cache(maxsize=512)
def _demo_series(symbol: str, timeframe: str) -> pd.DataFrame:
    rng = np.random.default_rng(zlib.crc32(f"{symbol}|{timeframe}".encode()))
    n = DEMO_LENGTH
    step_s = TIMEFRAMES[timeframe]
    scale = np.sqrt(step_s / 3600)
    vol = rng.uniform(0.004, 0.02) * scale
    # Trend regimes: a new drift every ~200 candles, so rankings change over time.
    regime_drift = rng.normal(0, vol * 0.15, size=n // 200 + 1)
    drift = np.repeat(regime_drift, 200)[:n]
    shocks = rng.standard_t(df=4, size=n) * vol / np.sqrt(2)
    log_close = np.log(rng.uniform(0.05, 5000)) + np.cumsum(drift + shocks)
    close = np.exp(log_close)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0, vol * 0.6, size=(2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = rng.lognormal(mean=10, sigma=0.5, size=n) * (1 + 20 * np.abs(shocks))
    index = pd.date_range(end=DEMO_END, periods=n, freq=pd.Timedelta(seconds=step_s), name="timestamp")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )
