"""The track record's chart: a PNG of the cumulative top-K excess of the strategy against the
volume and momentum baselines, and the rank IC of each record, at one horizon. Pure and
thread-safe like bot/chart.py (matplotlib's object API on the Agg canvas)."""

import io
from datetime import datetime, timezone

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.track.service import GroupTrack


def chart_horizon(track: GroupTrack) -> int | None:
    """The smallest scored horizon: its records overlap least, so their sum is a fair path."""
    return min(track.series) if track.series else None


def track_chart_png(track: GroupTrack) -> bytes:
    h = chart_horizon(track)
    if h is None:
        raise ValueError("no pick record of this group has been scored yet")
    series = track.series[h]
    when = [datetime.fromtimestamp(t / 1000, timezone.utc) for t in series["t"]]
    figure = Figure(figsize=(9, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    path_ax, ic_ax = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for name, color in (("top_k_excess", "#2e7d32"), ("volume", "#6d4c41"), ("momentum", "#1565c0")):
        label = f"top {track.k} ({track.strategy})" if name == "top_k_excess" else f"{name} baseline"
        path_ax.plot(when, np.cumsum(series[name]) * 100, label=label, color=color)
    path_ax.axhline(0, color="#555", linewidth=0.8)
    path_ax.set_ylabel(f"cumulative excess over the universe, % ({h} bar{'s' if h > 1 else ''} ahead)")
    path_ax.legend(loc="upper left", fontsize="small")
    ic = series["ic"]
    ic_ax.bar(
        when,
        ic,
        color=["#2e7d32" if v >= 0 else "#c62828" for v in ic],
        width=0.8 * (max(when) - min(when)) / max(len(when), 1) if len(when) > 1 else 0.02,
    )
    ic_ax.axhline(0, color="#555", linewidth=0.8)
    ic_ax.set_ylabel("rank IC per pick")
    figure.suptitle(f"Track record: {track.title} · {track.records} picks", fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
