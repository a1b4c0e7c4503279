"""Baselines on the same records: what a trader gets without the strategy.

- volume: the universe ranked by trailing 24-bar quote volume (close x volume) up to `t`;
- momentum: the universe ranked by its trailing 24-bar return, close(t) / close(t-24) - 1;
- random: K markets drawn at random, as a PERMUTATION INTERVAL: the 2.5%..97.5% range of a
  metric's mean over the records across many random draws (what luck alone gives), not a point.

Each baseline is a PickRecord of the same decision (same t, universe, K), so it goes through the
same returns, metrics and aggregation as the strategy. Only candles closed by `t` are read.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from analysis.track.model import PickRecord, Ranked
from analysis.track.returns import ForwardReturns

TRAILING_BARS = 24
BASELINES = ("volume", "momentum")


def closed_by(frame: pd.DataFrame | None, t: int, step_ms: int) -> pd.DataFrame:
    """The candles of `frame` that had closed by `t` (ms)."""
    if frame is None:
        return pd.DataFrame(columns=["close", "volume"])
    return frame[frame.index.as_unit("ms").asi8 + step_ms <= t]


def trailing_quote_volume(frame: pd.DataFrame) -> float:
    recent = frame.iloc[-TRAILING_BARS:]
    return float((recent["close"] * recent["volume"]).sum())


def trailing_return(frame: pd.DataFrame) -> float:
    if len(frame) <= TRAILING_BARS:
        return float("nan")
    return float(frame["close"].iloc[-1] / frame["close"].iloc[-1 - TRAILING_BARS] - 1.0)


MEASURES: dict[str, Callable[[pd.DataFrame], float]] = {
    "volume": trailing_quote_volume, "momentum": trailing_return}


def ranked_by(record: PickRecord, values: Mapping[str, float], name: str) -> PickRecord:
    """`record`'s decision re-ranked by `values` (highest first; NaN last; ties by symbol)."""
    def key(symbol: str) -> tuple[float, str]:
        value = values[symbol]
        return (-value if np.isfinite(value) else float("inf"), symbol)
    order = sorted(record.symbols(), key=key)
    universe = tuple(Ranked(s, round(values[s], 10) if np.isfinite(values[s]) else float("nan"), i + 1)
                     for i, s in enumerate(order))
    return replace(record, strategy=f"baseline:{name}", model=None, universe=universe)


def baseline_record(record: PickRecord, name: str, candles: Mapping[str, pd.DataFrame],
                    step_ms: int) -> PickRecord:
    """The record the baseline `name` (volume or momentum) would have made at `record.t`."""
    measure = MEASURES[name]
    values = {s: measure(closed_by(candles.get(s), record.t, step_ms)) for s in record.symbols()}
    return ranked_by(record, values, name)


def random_interval(records: Sequence[PickRecord], returns: Sequence[ForwardReturns], *,
                    metric: str = "top_k_excess", draws: int = 200, seed: int = 0
                    ) -> tuple[float, float]:
    """The 95% permutation interval of `metric`'s mean over `records` for a ranking drawn at
    random at each record ('top_k_excess', 'hit_rate' or 'ic')."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(draws)
    for record, ret in zip(records, returns):
        r = np.array([ret.returns[s] for s in record.symbols()])
        order = np.argsort(rng.random((draws, len(r))), axis=1)  # a random ranking per draw
        drawn = r[order]
        if metric == "top_k_excess":
            totals += drawn[:, : record.k].mean(axis=1) - r.mean()
        elif metric == "hit_rate":
            totals += (drawn[:, : record.k] > np.median(r)).mean(axis=1)
        elif metric == "ic":
            totals += _rank_correlations(r, order)
        else:
            raise ValueError(f"no random baseline for {metric!r}")
    means = totals / max(1, len(records))
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _rank_correlations(r: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Spearman(ranking best first, r) for each row of `orders` (a ranking as indices into r)."""
    ry = pd.Series(r).rank().to_numpy()[orders]  # r's ranks, in each ranking's order
    best_first = -np.arange(len(r), dtype=float)
    a, b = best_first - best_first.mean(), ry - ry.mean(axis=1, keepdims=True)
    norm = np.sqrt((a**2).sum() * (b**2).sum(axis=1))
    return np.divide((b * a).sum(axis=1), norm, out=np.zeros(len(orders)), where=norm > 0)
