"""The ranking chart: a PNG of the top K: each market's score (the composite score, or the judge's
strength for llm) and its chance of being in the top K (the per-market figure behind the confidence).

Pure and thread-safe (matplotlib's object API on the Agg canvas, no pyplot state), so the bot
renders it in a worker thread without blocking its event loop.
"""

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.models import Gist


def ranking_chart_png(gist: Gist) -> bytes:
    items = gist.result
    if not items:
        raise ValueError("the analysis has no ranking to chart yet")
    symbols = [item.symbol for item in items][::-1]  # best on top
    labels = [f"{item.rank}. {item.symbol}" for item in items][::-1]
    scores = [item.score for item in items][::-1]
    in_top = gist.p_in_top_k
    shares = [float(in_top.get(s, float("nan"))) for s in symbols]

    height = 1.6 + 0.38 * len(items)
    figure = Figure(figsize=(9, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    score_ax, share_ax = figure.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    colors = ["#2e7d32" if s >= 0 else "#c62828" for s in scores]
    score_ax.barh(labels, scores, color=colors)
    score_ax.axvline(0, color="#555", linewidth=0.8)
    llm = gist.config.strategy == "llm"
    score_ax.set_xlabel("judge's strength (Plackett–Luce)" if llm else "composite score")
    share_ax.barh(labels, shares, color="#1565c0")
    share_ax.set_xlim(0, 1)
    share_ax.axvline(
        gist.target, color="#ef6c00", linestyle="--", linewidth=1, label=f"target {gist.target:.2f}"
    )
    share_ax.set_xlabel(f"P(in top {len(items)})" if llm else f"share of moments in top {len(items)}")
    share_ax.legend(loc="lower right", fontsize="small")
    title = f"{gist.config.summary()} · confidence {gist.confidence:.2f} (target {gist.target:.2f})"
    if gist.demo:
        title += "\nDEMO DATA: synthetic markets, not real prices"
    else:
        title += f"\n{gist.source_label()}"
    figure.suptitle(title, fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
