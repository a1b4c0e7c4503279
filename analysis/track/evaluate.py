"""Records -> per-record metrics, the baselines on the same records, and their summaries.

One pass for a list of records of one (strategy, timeframe, source): what the replay prints and
what a track table is made of. Baseline records are re-rankings of each record (baselines.py).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from analysis.track.aggregate import METRICS, summarize
from analysis.track.baselines import random_intervals, ranked_by
from analysis.track.metrics import record_metrics
from analysis.track.model import PickRecord, RecordMetrics, Summary
from analysis.track.returns import Closes, ForwardReturns, forward_returns_of


@dataclass
class Evaluation:
    """Everything the track table shows, per ranking ('score', 'volume', 'momentum') and horizon."""

    records: list[PickRecord]
    metrics: dict[str, dict[int, list[RecordMetrics]]] = field(default_factory=dict)
    summaries: dict[str, dict[int, dict[str, Summary]]] = field(default_factory=dict)
    random: dict[int, dict[str, tuple[float, float]]] = field(default_factory=dict)


def evaluate(
    records: Sequence[PickRecord],
    closes: Mapping[str, Closes],
    horizons: Sequence[int],
    known_until: int,
    *,
    baselines: Sequence[Mapping[str, Mapping[str, float]]] = (),
    random_draws: int = 200,
    seed: int = 0,
) -> Evaluation:
    """Score `records` (oldest first) at each horizon complete by `known_until`; `baselines[i]`
    holds each baseline's value per market at record i (replay.decide, or live candles)."""
    result = Evaluation(records=list(records))
    rankings: dict[str, list[PickRecord]] = {"score": list(records)}
    for i, values in enumerate(baselines):
        for name, by_symbol in values.items():
            rankings.setdefault(name, []).append(ranked_by(records[i], by_symbol, name))
    returns: dict[int, list[tuple[PickRecord, ForwardReturns]]] = {h: [] for h in horizons}
    for record in records:
        for h, ret in forward_returns_of(record, closes, horizons, known_until).items():
            returns[h].append((record, ret))
    for name, ranked in rankings.items():
        by_t = {r.t: r for r in ranked}
        result.metrics[name] = {}
        for h in horizons:
            rows, previous = [], None
            for record, ret in returns[h]:
                mine = by_t[record.t]
                rows.append(record_metrics(mine, ret, previous))
                previous = mine.top()
            result.metrics[name][h] = rows
        result.summaries[name] = {
            h: summaries(rows, h, records[0].timeframe if records else "1h")
            for h, rows in result.metrics[name].items()
        }
    for h in horizons:
        pairs = returns[h]
        result.random[h] = (
            random_intervals([r for r, _ in pairs], [x for _, x in pairs], draws=random_draws, seed=seed)
            if pairs
            else {}
        )
    return result


def summaries(rows: Sequence[RecordMetrics], horizon: int, timeframe: str) -> dict[str, Summary]:
    times = [m.t for m in rows]
    return {
        name: summarize(
            [getattr(m, name) for m in rows], times, metric=name, horizon=horizon, timeframe=timeframe
        )
        for name in METRICS
    }
