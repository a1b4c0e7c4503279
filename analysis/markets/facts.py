"""The few facts about a market a reader checks a ranking's words against: computed from the
candles alone, the same way for every strategy (docs/explain.md)."""

import pandas as pd

FACT_BARS = 24


def candle_facts(candles: pd.DataFrame, bars: int = FACT_BARS) -> dict[str, float]:
    """The return over the last `bars` candles (close against the close `bars` candles before)
    and the quote volume traded in them (close x volume, summed)."""
    recent = candles.iloc[-bars:]
    before = candles["close"].iloc[-bars - 1] if len(candles) > bars else candles["close"].iloc[0]
    change = float(recent["close"].iloc[-1] / before - 1.0) if before else 0.0
    volume = float((recent["close"] * recent["volume"]).sum())
    return {"return_24": float(f"{change:.6g}"), "quote_volume_24": float(f"{volume:.6g}")}
