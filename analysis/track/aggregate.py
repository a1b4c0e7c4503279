"""Many records' metrics -> a mean with a 95% interval that respects overlapping windows.

Records closer than h bars apart share returns (two hourly records 24 bars ahead share 23 of
their 24 bars), so their metrics are not independent and n records are worth far fewer. METHOD:
the mean is over ALL records (on a regular grid it is the average of the h staggered,
non-overlapping series), and its standard error is std / sqrt(n_independent), where
n_independent counts the records at least h bars apart (a greedy pass, oldest first; about n/h
on a regular hourly grid). For h-bar sums of independent bars this is exactly the variance of
the overlapping mean (h·s² / (n/h) = h²·s²/n). The interval is mean ± t(0.975, n_ind − 1)·se.
Below MIN_INDEPENDENT independent records the summary says "not enough history yet (n of 30)".
"""

from collections.abc import Iterable, Sequence

import numpy as np

from analysis.markets.base import TIMEFRAMES
from analysis.track.model import MIN_INDEPENDENT, PickRecord, RecordMetrics, Summary

METHOD = "mean of all records; se = std / sqrt(records >= h bars apart)"
METRICS = ("ic", "top_k_excess", "hit_rate", "top_minus_bottom")
GroupKey = tuple[str, str, str, int]  # strategy, timeframe, source, horizon


def independent_count(times_ms: Iterable[int], horizon: int, timeframe: str) -> int:
    """How many of the records are at least `horizon` bars apart (greedy, oldest first)."""
    gap = max(1, horizon) * TIMEFRAMES[timeframe] * 1000
    count, last = 0, None
    for t in sorted(times_ms):
        if last is None or t - last >= gap:
            count, last = count + 1, t
    return count


def t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile (Cornish-Fisher expansion; within 0.2% for df >= 5)."""
    z = 1.959963985
    if df <= 0:
        return float("inf")
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def summarize(
    values: Sequence[float], times_ms: Sequence[int], *, metric: str, horizon: int, timeframe: str
) -> Summary:
    """The summary of one metric's per-record `values` (records decided at `times_ms`)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    n_ind = independent_count(times_ms, horizon, timeframe)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    half = t_quantile_975(n_ind - 1) * std / np.sqrt(n_ind) if n_ind > 1 else float("nan")
    icir = mean / std if metric == "ic" and n > 1 and std > 0 else None
    return Summary(
        metric=metric,
        horizon=horizon,
        mean=mean,
        ci95_low=mean - half,
        ci95_high=mean + half,
        icir=icir,
        n=n,
        n_independent=n_ind,
        method=METHOD,
        enough=n_ind >= MIN_INDEPENDENT,
    )


def group_key(record: PickRecord, horizon: int) -> GroupKey:
    return (record.strategy, record.timeframe, record.source, horizon)


def summarize_all(scored: Iterable[tuple[PickRecord, RecordMetrics]]) -> dict[GroupKey, dict[str, Summary]]:
    """Per (strategy, timeframe, source, horizon): a Summary of each metric in METRICS."""
    groups: dict[GroupKey, list[RecordMetrics]] = {}
    for record, metrics in scored:
        groups.setdefault(group_key(record, metrics.horizon), []).append(metrics)
    return {
        key: {
            name: summarize(
                [getattr(m, name) for m in rows],
                [m.t for m in rows],
                metric=name,
                horizon=key[3],
                timeframe=key[1],
            )
            for name in METRICS
        }
        for key, rows in groups.items()
    }
