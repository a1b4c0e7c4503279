"""Baselines on the same records: what a trader gets without the strategy.

- volume: the universe ranked by trailing 24-bar quote volume (close x volume) up to `t`;
- momentum: the universe ranked by its trailing 24-bar return, close(t) / close(t-24) - 1;
- random: K markets drawn at random, as a PERMUTATION INTERVAL: the 2.5%..97.5% range of a
  metric's mean over the records across many random draws (what luck alone gives), not a point.

Each baseline is a PickRecord of the same decision (same t, universe, K), so it goes through the
same returns, metrics and aggregation as the strategy. Only candles closed by `t` are read.
"""

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from analysis.track.metrics import average_ranks
from analysis.track.model import PickRecord, Ranked
from analysis.track.returns import ForwardReturns

TRAILING_BARS = 24
BASELINES = ("volume", "momentum")


def closed_by(frame: pd.DataFrame | None, t: int, step_ms: int) -> pd.DataFrame:
    """The candles of `frame` that had closed by `t` (ms)."""
    if frame is None:
        return pd.DataFrame(columns=["close", "volume"], dtype=float)
    return frame[frame.index.as_unit("ms").asi8 + step_ms <= t]


def trailing_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Per candle, each baseline's value as of that candle's close (causal: rolling windows
    ending at the row). The one rule for both the live records and the replay."""
    quote = frame["close"] * frame["volume"]
    return pd.DataFrame(
        {
            "volume": quote.rolling(TRAILING_BARS, min_periods=1).sum(),
            "momentum": frame["close"] / frame["close"].shift(TRAILING_BARS) - 1.0,
        },
        index=frame.index,
    )


def ranked_by(record: PickRecord, values: Mapping[str, float], name: str) -> PickRecord:
    """`record`'s decision re-ranked by `values` (highest first; NaN last; ties by symbol)."""

    def key(symbol: str) -> tuple[float, str]:
        value = values[symbol]
        return (-value if np.isfinite(value) else float("inf"), symbol)

    order = sorted(record.symbols(), key=key)
    universe = tuple(
        Ranked(s, round(values[s], 10) if np.isfinite(values[s]) else float("nan"), i + 1)
        for i, s in enumerate(order)
    )
    return replace(record, strategy=f"baseline:{name}", model=None, universe=universe)


def baseline_values(
    record: PickRecord, candles: Mapping[str, pd.DataFrame], step_ms: int
) -> dict[str, dict[str, float]]:
    """Each baseline's value per market of `record` as of `record.t` (what evaluate() takes)."""
    values: dict[str, dict[str, float]] = {name: {} for name in BASELINES}
    for symbol in record.symbols():
        seen = closed_by(candles.get(symbol), record.t, step_ms)
        last = trailing_series(seen).iloc[-1] if len(seen) else None
        for name in BASELINES:
            values[name][symbol] = float("nan") if last is None else float(last[name])
    return values


def baseline_record(
    record: PickRecord, name: str, candles: Mapping[str, pd.DataFrame], step_ms: int
) -> PickRecord:
    """The record the baseline `name` (volume or momentum) would have made at `record.t`."""
    return ranked_by(record, baseline_values(record, candles, step_ms)[name], name)


def random_intervals(
    records: Sequence[PickRecord], returns: Sequence[ForwardReturns], *, draws: int = 200, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """The 95% permutation interval of the mean over `records` of 'ic', 'top_k_excess' and
    'hit_rate' for a ranking drawn at random at each record (what luck alone gives)."""
    rng = np.random.default_rng(seed)
    totals = {name: np.zeros(draws) for name in ("ic", "top_k_excess", "hit_rate")}
    for record, ret in zip(records, returns):
        r = np.array([ret.returns[s] for s in record.symbols()])
        orders = np.argsort(rng.random((draws, len(r))), axis=1)  # a random ranking per draw
        top = r[orders[:, : record.k]]
        totals["top_k_excess"] += top.mean(axis=1) - r.mean()
        totals["hit_rate"] += (top > np.median(r)).mean(axis=1)
        totals["ic"] += _rank_correlations(r, orders)
    n = max(1, len(records))
    return {
        name: (float(np.percentile(t / n, 2.5)), float(np.percentile(t / n, 97.5)))
        for name, t in totals.items()
    }


def _rank_correlations(r: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Spearman(ranking best first, r) for each row of `orders` (a ranking as indices into r)."""
    ry = average_ranks(r)[orders]  # r's ranks, in each ranking's order
    best_first = -np.arange(len(r), dtype=float)
    a, b = best_first - best_first.mean(), ry - ry.mean(axis=1, keepdims=True)
    norm = np.sqrt((a**2).sum() * (b**2).sum(axis=1))
    return np.divide((b * a).sum(axis=1), norm, out=np.zeros(len(orders)), where=norm > 0)
