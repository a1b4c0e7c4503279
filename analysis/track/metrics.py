"""What one record earned at one horizon, from its universe's forward returns (returns.py).

- rank IC: Spearman correlation between the ranking (best first) and r across the universe;
  positive when better-ranked markets went up more. Ties in r share their average rank.
- top-K excess: equal-weight mean r of the top K minus the mean r of the whole universe.
- hit rate: share of the top K whose r is above the universe's median r.
- top-minus-bottom: mean r of the best-ranked fifth minus the worst-ranked fifth (at least one
  market each).
- turnover: share of this top K that was not in the previous record's top K (None without one).
"""

from collections.abc import Sequence

import numpy as np

from analysis.track.model import PickRecord, RecordMetrics
from analysis.track.returns import ForwardReturns


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (scipy's rankdata 'average')."""
    a = np.asarray(values, dtype=float)
    order = np.argsort(a, kind="mergesort")
    inverse = np.empty(len(a), dtype=np.intp)
    inverse[order] = np.arange(len(a))
    ordered = a[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = starts.cumsum()[inverse]
    bounds = np.r_[np.nonzero(starts)[0], len(a)]
    return 0.5 * (bounds[group] + bounds[group - 1] + 1)


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho with average ranks for ties; 0.0 when either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    if len(rx) < 2 or np.std(rx) == 0 or np.std(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def turnover(top: Sequence[str], previous_top: Sequence[str] | None) -> float | None:
    if previous_top is None:
        return None
    return 1.0 - len(set(top) & set(previous_top)) / len(top)


def record_metrics(
    record: PickRecord, returns: ForwardReturns, previous_top: Sequence[str] | None = None
) -> RecordMetrics:
    """The metrics of `record` at `returns.horizon`; `previous_top` is the previous record's top K
    (same schedule, or the replay's previous decision) for turnover."""
    ordered = np.array([returns.returns[s] for s in record.symbols()])  # best first
    n, k = len(ordered), record.k
    fifth = max(1, n // 5)
    top = ordered[:k]
    return RecordMetrics(
        t=record.t,
        horizon=returns.horizon,
        ic=spearman([-m.rank for m in record.universe], ordered),
        top_k_excess=float(top.mean() - ordered.mean()),
        hit_rate=float((top > np.median(ordered)).mean()),
        top_minus_bottom=float(ordered[:fifth].mean() - ordered[-fifth:].mean()),
        turnover=turnover(record.top(), previous_top),
        flagged=returns.flagged,
    )
