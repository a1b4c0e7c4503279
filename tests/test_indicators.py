"""Indicator values on the real Binance candles agree with TA-Lib, computed independently here."""

import numpy as np
import pytest
import talib

from analysis.markets.csv_dir import CsvDirProvider
from analysis.markets.indicators import WARMUP_CANDLES, indicator_frame

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def provider(shared_data_dir):
    return CsvDirProvider(shared_data_dir)


def test_real_data_has_the_forty_markets(provider):
    markets = provider.list_markets("1h")
    assert len(markets) == 40
    assert {"BTC/USDT", "PEPE/USDT", "TRX/USDT"} <= set(markets)
    assert len(provider.candles("BTC/USDT", "1h", 10_000)) == 2160


@pytest.mark.slow
def test_indicators_agree_with_talib_after_warmup_on_every_market(provider):
    worst = {}
    for symbol in provider.list_markets("1h"):
        candles = provider.candles(symbol, "1h", 10_000)
        ours = indicator_frame(candles).iloc[WARMUP_CANDLES:]
        high, low, close = (candles[c].to_numpy() for c in ("high", "low", "close"))
        upper, _, lower = talib.BBANDS(close, timeperiod=20, nbdevup=2, nbdevdn=2)
        reference = {
            "rsi_14": talib.RSI(close, timeperiod=14),
            "macd_hist": talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)[2],
            "bb_pctb": (close - lower) / (upper - lower),
            "atr_14": talib.ATR(high, low, close, timeperiod=14),
            "adx_14": talib.ADX(high, low, close, timeperiod=14),
        }
        for name, values in reference.items():
            expected = values[WARMUP_CANDLES:]
            got = ours[name].to_numpy()
            scale = np.nanmax(np.abs(expected))
            error = np.nanmax(np.abs(got - expected)) / scale
            worst[name] = max(worst.get(name, 0.0), error)
    # Tolerances from the data README: relative to the series' largest value, after 300 rows.
    assert worst["bb_pctb"] < 1e-9, worst
    for name in ("rsi_14", "macd_hist", "atr_14", "adx_14"):
        assert worst[name] < 1e-5, (name, worst)


def test_indicators_disagree_before_warmup_so_the_warmup_matters(provider):
    candles = provider.candles("BTC/USDT", "1h", 10_000)
    close = candles["close"].to_numpy()
    ours = indicator_frame(candles)["rsi_14"].to_numpy()
    reference = talib.RSI(close, timeperiod=14)
    early = np.nanmax(np.abs(ours[20:60] - reference[20:60]))
    assert early > 1e-3  # ta and TA-Lib seed RSI differently; only later rows agree
