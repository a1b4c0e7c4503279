"""Why each market ranks where it does, and what its data was like (docs/explain.md).

Built from what the analysis stored, never recomputed: a `score` ranking's per-indicator
breakdown (analysis/ranking/strategies/score.py `latest_breakdown`, the same computation as the
score), an `llm` ranking's reasons from the judge (analysis/ranking/llm_reasons.py) beside a fixed
table of facts from the candles, and INIT's data quality (analysis/markets/quality.py). Text here
is plain; each front escapes it.
"""

from typing import Any

from analysis.errors import NotFound, quoted
from analysis.markets.quality import at, findings, quality_head, quality_line
from analysis.models import Gist, Status

# component -> (indicator field, what it says), in the order of the composite.
COMPONENTS = {
    "trend": ("ema_trend", "trend"),
    "momentum": ("rsi_14", "momentum"),
    "macd": ("macd_hist", "momentum shift"),
    "band": ("bb_pctb", "place in its band"),
    "strength": ("adx_14", "trend strength"),
}
# The fixed table of facts: (field, label, format), in the order shown.
FACTS = (
    ("close", "close", "{:.6g}"),
    ("rsi_14", "RSI(14)", "{:.1f}"),
    ("macd_hist", "MACD histogram", "{:.4g}"),
    ("bb_pctb", "Bollinger %B", "{:.2f}"),
    ("atr_14", "ATR(14)", "{:.4g}"),
    ("adx_14", "ADX(14)", "{:.1f}"),
    ("ema_trend", "EMA20 vs EMA50", "{:+.2%}"),
    ("volume_change", "volume vs previous 24", "{:+.0%}"),
    ("return_24", "return, last 24 candles", "{:+.2%}"),
    ("quote_volume_24", "quote volume, last 24 candles", "{:,.0f}"),
)


def indicator_words(component: str, snapshot: dict[str, float]) -> str:
    """'RSI 71', 'ADX 48', 'EMA20/EMA50 +1.2%': the raw value a component reads."""
    value = snapshot.get(COMPONENTS[component][0], float("nan"))
    if component == "trend":
        return f"EMA20/EMA50 {value:+.2%}"
    if component == "momentum":
        return f"RSI {value:.0f}"
    if component == "macd":
        atr = snapshot.get("atr_14") or float("nan")
        return f"MACD {value / atr:+.2f} ATR"
    if component == "band":
        return f"%B {value:.2f}"
    return f"ADX {value:.0f}"


def breakdown(state: dict[str, Any], symbol: str) -> list[dict[str, Any]]:
    """A score market's rows, strongest contribution first: component, indicator, raw, normalised,
    weight, contribution and the words ('+0.31 RSI 71 (momentum)'); [] if none was stored."""
    parts = (state.get("breakdown") or {}).get(symbol)
    snapshot = (state.get("snapshots") or {}).get(symbol, {})
    if not parts:
        return []
    rows = []
    for component, (normalised, weight, contribution) in parts.items():
        field, meaning = COMPONENTS[component]
        rows.append(
            {
                "component": component,
                "indicator": field,
                "raw": snapshot.get(field),
                "normalised": normalised,
                "weight": weight,
                "contribution": contribution,
                "words": f"{contribution:+.2f} {indicator_words(component, snapshot)} ({meaning})",
            }
        )
    return sorted(rows, key=lambda r: -abs(r["contribution"]))


def facts(state: dict[str, Any], symbol: str) -> dict[str, float]:
    """The fixed table of facts from the candles: the indicator snapshot, 24-candle return and
    quote volume."""
    return {**(state.get("snapshots") or {}).get(symbol, {}), **(state.get("facts") or {}).get(symbol, {})}


def market_entry(gist: Gist, rank: int, symbol: str, score: float) -> dict[str, Any]:
    state: dict[str, Any] = dict(gist.state)
    entry: dict[str, Any] = {"rank": rank, "symbol": symbol, "score": score, "facts": facts(state, symbol)}
    if gist.config.strategy == "llm":
        entry["reason"] = (state.get("reasons") or {}).get(symbol)
    else:
        rows = breakdown(state, symbol)
        entry["breakdown"] = rows
        entry["contributions_sum"] = round(sum(r["contribution"] for r in rows), 6) if rows else None
    return entry


def explain_document(gist: Gist, symbol: str | None = None) -> dict[str, Any]:
    """What `marketrank explain --json` prints and `status --json` holds as `explain`: each
    ranked market (or only `symbol`) with its breakdown or reason and facts, and the data quality."""
    state: dict[str, Any] = dict(gist.state)
    markets = [market_entry(gist, item.rank, item.symbol, item.score) for item in gist.result]
    if symbol is not None:
        if not isinstance(symbol, str):
            raise NotFound(f"{quoted(symbol)} is not a market symbol (write it like BTC/USDT)")
        wanted = symbol.strip().upper()
        markets = [m for m in markets if m["symbol"] == wanted]
        if not markets:
            raise NotFound(
                f"{quoted(symbol)} is not in the ranking of {gist.short_id}"
                + ("" if gist.result else " (it has no ranking yet)")
            )
    document: dict[str, Any] = {
        "id": gist.id,
        "strategy": gist.config.strategy,
        "kind": gist.config.kind,
        "method": (
            "the judge's reasons beside facts from the candles"
            if gist.config.strategy == "llm"
            else "per-indicator contributions that add up to the score"
        ),
        "markets": markets,
        "data_quality": state.get("data_quality"),
    }
    if state.get("reasons_error"):
        document["reasons_error"] = state["reasons_error"]
    return document


def data_line(gist: Gist) -> str:
    """The card's data-quality line, or '' before INIT ran."""
    quality = dict(gist.state).get("data_quality")
    return quality_line(quality) if isinstance(quality, dict) else ""


def why_lines(gist: Gist) -> list[str]:
    """The Why button's answer: each top-K market with its two strongest contributions, or the
    judge's reason; then the data line."""
    if gist.status != Status.COMPLETED or not gist.result:
        return ["The reasons are ready once the analysis completes."]
    document = explain_document(gist)
    lines = []
    for m in document["markets"]:
        if "reason" in m:
            why = m["reason"] or "(no reason from the judge)"
        else:
            why = ", ".join(r["words"] for r in m["breakdown"][:2]) or "(no breakdown stored)"
        lines.append(f"{m['rank']}. {m['symbol']} {m['score']:+.3f}: {why}")
    if document.get("reasons_error"):
        lines.append(f"The judge gave no reasons: {document['reasons_error']}")
    if data_line(gist):
        lines.append(data_line(gist))
    return lines


def market_lines(document: dict[str, Any]) -> list[str]:
    """One market in full (`/why <id> SYMBOL`, `marketrank explain <id> SYMBOL`): its breakdown
    or reason, its facts, and what INIT found in its data."""
    lines = []
    for m in document["markets"]:
        lines.append(f"{m['rank']}. {m['symbol']} score {m['score']:+.4f}")
        if "reason" in m:
            lines.append(f"judge's reason: {m['reason'] or '(none)'}")
        for row in m.get("breakdown", []):
            lines.append(
                f"  {row['words']}: normalised {row['normalised']:+.3f} x weight {row['weight']:+.4f}"
            )
        if m.get("breakdown"):
            lines.append(f"  sum of contributions {m['contributions_sum']:+.4f} = score")
        lines.append(
            "facts: "
            + " · ".join(
                f"{label} {form.format(m['facts'][key])}" for key, label, form in FACTS if key in m["facts"]
            )
        )
        quality = (document.get("data_quality") or {}).get("markets", {}).get(m["symbol"])
        if quality:
            lines.append(
                f"data: {quality['candles']} candles to {at(quality['last_close'])} "
                f"(last trade {at(quality['last_trade'])}), {quality['gaps']} gaps, "
                f"{quality['zero_volume']} zero-volume, {quality['jumps']} jumps"
            )
    return lines


def quality_lines(document: dict[str, Any]) -> list[str]:
    """Every finding of the data quality, one line each."""
    quality = document.get("data_quality")
    if not quality:
        return ["data quality: not recorded (INIT has not run, or ran before it was recorded)"]
    found = findings(quality)
    return (
        [quality_head(quality) + f" · {quality['ranked']} ranked"]
        + [f"  {symbol}: {what}" for symbol, what in found]
        + ([] if found else ["  nothing found"])
    )
