"""Technical indicators from the `ta` library, and a market's indicator snapshot.

`ta` seeds its recursions (RSI, MACD, ATR, ADX) differently from TA-Lib, so values agree only
after warm-up: WARMUP_CANDLES is where they agree to about 1e-6 relative (see the data README).
"""

import numpy as np
import pandas as pd
from ta.momentum import RSIIndicator
from ta.trend import MACD, ADXIndicator, EMAIndicator
from ta.volatility import AverageTrueRange, BollingerBands

WARMUP_CANDLES = 300
SNAPSHOT_FIELDS = (
    "close",
    "rsi_14",
    "macd_hist",
    "bb_pctb",
    "atr_14",
    "adx_14",
    "ema_trend",
    "volume_change",
)


def indicator_frame(candles: pd.DataFrame) -> pd.DataFrame:
    """One row per candle with every snapshot field (NaN during each indicator's own warm-up)."""
    close, high, low = candles["close"], candles["high"], candles["low"]
    ema_fast = EMAIndicator(close, window=20).ema_indicator()
    ema_slow = EMAIndicator(close, window=50).ema_indicator()
    volume = candles["volume"]
    return pd.DataFrame(
        {
            "close": close,
            "rsi_14": RSIIndicator(close, window=14).rsi(),
            "macd_hist": MACD(close, window_slow=26, window_fast=12, window_sign=9).macd_diff(),
            "bb_pctb": BollingerBands(close, window=20, window_dev=2).bollinger_pband(),
            "atr_14": AverageTrueRange(high, low, close, window=14).average_true_range(),
            "adx_14": ADXIndicator(high, low, close, window=14).adx(),
            # EMA(20) over EMA(50), minus one: > 0 in an uptrend.
            "ema_trend": ema_fast / ema_slow - 1.0,
            # Last 24 candles' volume against the 24 before them, minus one.
            "volume_change": volume.rolling(24).sum() / volume.shift(24).rolling(24).sum() - 1.0,
        },
        index=candles.index,
    )


def snapshot_at(frame: pd.DataFrame, row: int = -1) -> dict[str, float]:
    """The snapshot fields of one row as plain floats (rounded for display and JSON)."""
    values = frame.iloc[row]
    return {name: _rounded(values[name]) for name in SNAPSHOT_FIELDS}


def _rounded(value: float) -> float:
    if not np.isfinite(value):
        return float("nan")
    return float(f"{value:.6g}")
