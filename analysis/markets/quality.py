"""What INIT found in each market's candles, and which markets cannot carry their indicators.

Per market, over the window an analysis ranks: candles missing inside it (gaps), candles without
trades (zero volume), when its last candle closed and when it last traded, and closes that jump
beyond the stated bound. A market is **left out** (with its reason, not ranked on noise) when:

- it has fewer candles than the indicators need to settle (short history): WARMUP_CANDLES (`ta`
  seeds RSI, ATR and ADX differently from TA-Lib; they agree after 300 candles) plus the score's
  confidence views;
- its last trade is more than `stale_candles` candles older than the newest candle ranked
  (stale: ranking it would compare an old moment with today's);
- gaps and zero-volume candles together exceed MAX_THIN_SHARE of its window (thin).

Gaps, zero volume below that share and price jumps are reported, and the market is ranked.
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class QualityBounds:
    """The stated bounds: `needed` candles to settle, and why; at most `max_thin` of the window
    thin; a last trade at most `stale_candles` candles old; a close-to-close move within a
    factor of `jump_factor` (1.5: +50% or -33% in one candle)."""

    needed: int
    needed_why: str
    max_thin: float
    stale_candles: int
    jump_factor: float


def market_quality(
    window: pd.DataFrame, step_s: int, newest_close: int, bounds: QualityBounds
) -> dict[str, Any]:
    """What one market's window holds: candles, last_close, last_trade (epoch s, None if it
    never traded), gaps, zero_volume, jumps (count) and biggest_jump (factor), and `left_out`
    (the reason) when it cannot be ranked."""
    times = window.index.as_unit("s").asi8 if len(window) else np.array([], dtype="int64")
    candles = len(window)
    span = int((times[-1] - times[0]) // step_s) + 1 if candles else 0
    traded = times[window["volume"].to_numpy() > 0] if candles else times
    close = window["close"].to_numpy(dtype=float)
    ratio = close[1:] / np.where(close[:-1] > 0, close[:-1], np.nan) if candles > 1 else np.array([])
    factor = np.maximum(ratio, 1 / ratio) if len(ratio) else np.array([1.0])
    found: dict[str, Any] = {
        "candles": candles,
        "last_close": int(times[-1]) + step_s if candles else None,
        "last_trade": int(traded[-1]) + step_s if len(traded) else None,
        "gaps": span - candles,
        "zero_volume": int((window["volume"] <= 0).sum()) if candles else 0,
        "jumps": int(np.nansum(factor > bounds.jump_factor)),
        "biggest_jump": round(float(np.nanmax(factor)), 4) if len(factor) else 1.0,
    }
    reason = _left_out(found, step_s, newest_close, bounds)
    if reason:
        found["left_out"] = reason
    return found


def _left_out(found: dict[str, Any], step_s: int, newest_close: int, bounds: QualityBounds) -> str:
    if found["candles"] < bounds.needed:
        return (
            f"short history: {found['candles']} candles; the indicators need {bounds.needed} "
            f"to settle ({bounds.needed_why})"
        )
    last_trade = found["last_trade"]
    if last_trade is None or newest_close - last_trade > bounds.stale_candles * step_s:
        when = "never traded" if last_trade is None else f"last traded {at(last_trade)}"
        return (
            f"stale: {when}, more than {bounds.stale_candles} candles before the newest "
            f"candle ranked ({at(newest_close)})"
        )
    thin = (found["gaps"] + found["zero_volume"]) / (found["candles"] + found["gaps"])
    if thin > bounds.max_thin:
        return (
            f"thin: no trades in {thin:.0%} of its window ({found['gaps']} gaps, "
            f"{found['zero_volume']} zero-volume candles); the limit is {bounds.max_thin:.0%}"
        )
    return ""


def assess(
    windows: dict[str, pd.DataFrame],
    timeframe: str,
    step_s: int,
    newest_close: int | None,
    bounds: QualityBounds,
) -> dict[str, Any]:
    """The data quality of an analysis (stored in its state as `data_quality`): each market's
    findings and the sums, with the bounds used."""
    if newest_close is None:
        closes = [int(w.index[-1].value // 10**9) + step_s for w in windows.values() if len(w)]
        newest_close = max(closes, default=0)
    markets = {s: market_quality(w, step_s, newest_close, bounds) for s, w in windows.items()}
    return {
        "timeframe": timeframe,
        "newest_close": newest_close,
        "markets": markets,
        "ranked": sum(1 for m in markets.values() if "left_out" not in m),
        "gaps": sum(m["gaps"] for m in markets.values()),
        "zero_volume": sum(m["zero_volume"] for m in markets.values()),
        "jumps": sum(m["jumps"] for m in markets.values()),
        "left_out": {s: m["left_out"] for s, m in markets.items() if "left_out" in m},
        "bounds": {
            "needed_candles": bounds.needed,
            "max_thin_share": bounds.max_thin,
            "stale_candles": bounds.stale_candles,
            "jump_factor": bounds.jump_factor,
        },
    }


def findings(quality: dict[str, Any]) -> list[tuple[str, str]]:
    """(symbol, what was found) for every market with a finding, left-out ones first."""
    out = [(s, reason) for s, reason in quality.get("left_out", {}).items()]
    for symbol, m in quality.get("markets", {}).items():
        if "left_out" in m:
            continue
        words = []
        if m["gaps"]:
            words.append(f"{m['gaps']} gap{'s' if m['gaps'] > 1 else ''}")
        if m["zero_volume"]:
            words.append(f"{m['zero_volume']} zero-volume candle{'s' if m['zero_volume'] > 1 else ''}")
        if m["jumps"]:
            words.append(
                f"{m['jumps']} price jump{'s' if m['jumps'] > 1 else ''} "
                f"(up to x{m['biggest_jump']:.2f} in one candle)"
            )
        if words:
            out.append((symbol, ", ".join(words)))
    return out


def quality_line(quality: dict[str, Any], limit: int = 3) -> str:
    """One line for a card: 'data: 30 markets · 1h to 14:00 UTC · 2 gaps in FLOKI/USDT ·
    PEPE/USDT 120 candles (short history, left out)'."""
    markets = quality.get("markets", {})
    head = quality_head(quality)
    items = []
    for symbol, m in markets.items():
        reason = m.get("left_out", "")
        if reason.startswith("short history"):
            items.append(f"{symbol} {m['candles']} candles (short history, left out)")
        elif reason:
            items.append(f"{symbol} {reason.split(':', 1)[0]} (left out)")
        else:
            items += [f"{m['gaps']} gap{'s' if m['gaps'] > 1 else ''} in {symbol}"] if m["gaps"] else []
            items += [f"{m['zero_volume']} zero-volume in {symbol}"] if m["zero_volume"] else []
            items += [f"price jump x{m['biggest_jump']:.2f} in {symbol}"] if m["jumps"] else []
    if not items:
        return head + " · no gaps, zero volume, short, stale or jumping markets"
    more = f" · {len(items) - limit} more (Why)" if len(items) > limit else ""
    return " · ".join([head] + items[:limit]) + more


def quality_head(quality: dict[str, Any]) -> str:
    """'data: 30 markets · 1h to 2024-09-06 04:00 UTC'."""
    return (
        f"data: {len(quality.get('markets', {}))} markets · {quality.get('timeframe', '')} "
        f"to {at(quality.get('newest_close'))}"
    )


def at(epoch_s: int | None) -> str:
    """'2024-09-06 04:00 UTC'."""
    if not epoch_s:
        return "-"
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
