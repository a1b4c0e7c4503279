"""The track table (horizons as columns) and the JSON of an evaluation: what `marketrank
backtest` prints, and what a track view can reuse."""

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from analysis.track.aggregate import METHOD
from analysis.track.evaluate import Evaluation
from analysis.track.model import Summary

LABEL_WIDTH, CELL_WIDTH = 26, 22


def iso(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plus_minus(s: Summary, percent: bool) -> str:
    if s.n == 0:
        return "-"
    half = (s.ci95_high - s.ci95_low) / 2
    if percent:
        return f"{s.mean:+.3%} ± {half:.3%}" if half == half else f"{s.mean:+.3%}"
    return f"{s.mean:+.3f} ± {half:.3f}" if half == half else f"{s.mean:+.3f}"


def _interval(bounds: tuple[float, float] | None, style: str) -> str:
    if not bounds:
        return "-"
    low, high = bounds
    if style == "percent":
        return f"[{low:+.3%}, {high:+.3%}]"
    if style == "share":
        return f"[{low:.1%}, {high:.1%}]"
    return f"[{low:+.3f}, {high:+.3f}]"


def table(evaluation: Evaluation, horizons: Sequence[int], k: int, timeframe: str) -> str:
    """Rows per ranking (score, then the baselines, then random K) and metric; a column per
    horizon. ± is the 95% interval's half-width (overlap-aware, see aggregate.py)."""
    head = "".join(f"{f'{h} bar' + ('s' if h != 1 else '') + ' ahead':<{CELL_WIDTH}}" for h in horizons)
    lines = [f"{'':<{LABEL_WIDTH}}{head}"]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"{label:<{LABEL_WIDTH}}" + "".join(f"{c:<{CELL_WIDTH}}" for c in cells))

    for name, per_h in evaluation.summaries.items():
        cell = {h: per_h.get(h, {}) for h in horizons}
        row(f"{name:<9} IC", [_plus_minus(cell[h]["ic"], False) if cell[h] else "-" for h in horizons])
        row(
            f"{'':<9} top-{k} excess",
            [_plus_minus(cell[h]["top_k_excess"], True) if cell[h] else "-" for h in horizons],
        )
        row(
            f"{'':<9} hit rate",
            [
                f"{cell[h]['hit_rate'].mean:.1%}" if cell[h] and cell[h]["hit_rate"].n else "-"
                for h in horizons
            ],
        )
        row(
            f"{'':<9} n (independent)",
            [
                (
                    f"{cell[h]['ic'].n} ({cell[h]['ic'].n_independent})"
                    + ("" if cell[h]["ic"].enough else " too few")
                )
                if cell[h]
                else "0"
                for h in horizons
            ],
        )
    random = evaluation.random
    row(f"{'random K':<9} IC", [_interval(random.get(h, {}).get("ic"), "plain") for h in horizons])
    row(
        f"{'':<9} top-{k} excess",
        [_interval(random.get(h, {}).get("top_k_excess"), "percent") for h in horizons],
    )
    row(f"{'':<9} hit rate", [_interval(random.get(h, {}).get("hit_rate"), "share") for h in horizons])
    lines.append(
        f"± = 95% interval ({METHOD}); random K = 95% permutation interval; "
        f"bars of {timeframe}; 'too few' = under 30 independent records"
    )
    return "\n".join(lines)


def evaluation_json(evaluation: Evaluation, horizons: Sequence[int]) -> dict[str, Any]:
    """records[] (t, universe, per horizon the score ranking's metrics) and the summaries."""
    records = []
    score = evaluation.metrics.get("score", {})
    by_t = {h: {m.t: m for m in score.get(h, [])} for h in horizons}
    for record in evaluation.records:
        per_h: dict[str, Any] = {}
        for h in horizons:
            m = by_t[h].get(record.t)
            per_h[str(h)] = (
                None
                if m is None
                else {
                    "top_k_excess": m.top_k_excess,
                    "ic": m.ic,
                    "hit_rate": m.hit_rate,
                    "top_minus_bottom": m.top_minus_bottom,
                    "turnover": m.turnover,
                    "flagged": list(m.flagged),
                }
            )
        records.append(
            {
                "t": record.t,
                "time": iso(record.t),
                "k": record.k,
                "universe": record.to_dict()["universe"],
                "horizons": per_h,
            }
        )
    return {
        "records": records,
        "summaries": {
            name: {
                str(h): {metric: s.to_dict() for metric, s in by_metric.items()}
                for h, by_metric in per_h_summary.items()
            }
            for name, per_h_summary in evaluation.summaries.items()
        },
        "random": {
            str(h): {metric: list(bounds) for metric, bounds in by_metric.items()}
            for h, by_metric in evaluation.random.items()
        },
        "method": METHOD,
    }
