"""The track record as a plain-text table (the bot puts it in <pre>, the CLI prints it): horizons
as columns; IC, top-K excess (each ± its 95% interval), hit rate and n for the strategy; the
baselines' top-K excess beside it, and random K's permutation interval."""

from __future__ import annotations

from analysis.markets.base import TIMEFRAMES
from analysis.track.model import Summary
from analysis.track.service import GroupTrack, HorizonRow, duration, percent

LABEL, CELL = 13, 17


def plus_minus(s: Summary, as_percent: bool) -> str:
    half = (s.ci95_high - s.ci95_low) / 2
    if as_percent:
        return f"{percent(s.mean)}±{abs(half) * 100:.2f}" if half == half else percent(s.mean)
    return f"{s.mean:+.3f}±{abs(half):.3f}" if half == half else f"{s.mean:+.3f}"


def cells(rows: list[HorizonRow], cell) -> str:
    return "".join(f"{cell(row):<{CELL}}" for row in rows)


def table_text(track: GroupTrack) -> str:
    rows = track.rows
    step = TIMEFRAMES[track.timeframe]
    lines = [f"{track.title}: {track.records} picks, {track.scored} scored, top {track.k}"]
    if not rows:
        return "\n".join(lines + ["no horizon has closed yet for any pick"])
    lines.append(
        f"{'ahead':<{LABEL}}" + cells(rows, lambda r: f"{r.horizon} bars ({duration(r.horizon * step)})")
    )
    lines.append(f"{'IC':<{LABEL}}" + cells(rows, lambda r: plus_minus(r.strategy["ic"], False)))
    lines.append(
        f"{'top-K excess':<{LABEL}}" + cells(rows, lambda r: plus_minus(r.strategy["top_k_excess"], True))
    )
    lines.append(f"{'hit rate':<{LABEL}}" + cells(rows, lambda r: f"{r.strategy['hit_rate'].mean:.2f}"))
    lines.append(
        f"{'n (indep.)':<{LABEL}}"
        + cells(rows, lambda r: f"{r.strategy['ic'].n} ({r.strategy['ic'].n_independent})")
    )
    lines.append("baselines, top-K excess:")
    for name in ("volume", "momentum"):
        lines.append(
            f"{'  ' + name:<{LABEL}}" + cells(rows, lambda r, n=name: plus_minus(r.baselines[n], True))
        )
    lines.append(
        f"{'  random K':<{LABEL}}"
        + cells(rows, lambda r: f"[{percent(r.random[0])},{percent(r.random[1])}]" if r.random else "-")
    )
    waiting = [r for r in rows if not r.strategy["top_k_excess"].enough]
    if waiting:
        lines.append("; ".join(f"{r.horizon} bars: {r.strategy['top_k_excess'].status()}" for r in waiting))
    return "\n".join(lines)
