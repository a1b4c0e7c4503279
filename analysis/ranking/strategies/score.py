"""The `score` strategy: rank markets by a composite indicator score, a batch of markets per step.

Score (in -1..1, higher = stronger long outlook; negated for exit analyses):
    (0.35·trend + 0.25·momentum + 0.25·macd + 0.15·band) · (0.5 + 0.5·trend strength)
with trend = EMA20/EMA50 − 1 in units of 3 ATR%, momentum = (RSI − 50)/25, macd = MACD
histogram / ATR, band = 2·%B − 1 (each clipped to ±1) and trend strength = ADX/40 (clipped to 0..1).

Confidence (what it means, and why it is honest): a ranking from indicators has no "true"
answer to be right about, so we measure what a trader can check: whether the reported top K
holds if the analysis had been run at a slightly different moment. Each market is scored at
`views` consecutive candles ending at the last one; P(market in top K) is the share of those
moments at which it ranks in the top K, and confidence = the mean of that over the reported top
K, i.e. the expected precision@K of the reported set against the ranking at a moment drawn
uniformly from the last `views` candles.

Refine ("be surer"): the first pass reports the top K by the latest score; a refine reports
instead the K markets that were in the top K most often over the same moments (the steadiest
set, ordered by that share, then by the latest score). Under the same measure no set of K
markets scores higher, so the confidence never falls; when the steadiest set is already the
reported one, the note says no steadier set exists in this data. (Looking further back, the
former design, asked a harder question and made the same answer look worse.)
"""

from typing import NamedTuple, NotRequired, cast

import numpy as np
import pandas as pd

from analysis.markets.facts import candle_facts
from analysis.markets.indicators import indicator_frame, snapshot_at
from analysis.models import RankingConfig, SharedState, StepOutcome
from analysis.ranking.strategies.base import StepInput, target_not_reached

SCORING_SHARE = 0.95  # of the progress bar; the ordering step takes the rest


class ScoreState(SharedState):
    """The score strategy's state (JSON in the gist)."""

    markets: list[str]
    pending: list[str]  # markets not scored yet
    views: int  # evaluation moments per market
    scores: dict[str, list[float]]  # market -> composite score per view, latest first
    snapshots: dict[str, dict[str, float]]
    breakdown: NotRequired[dict[str, dict[str, list[float]]]]  # market -> latest_breakdown
    facts: NotRequired[dict[str, dict[str, float]]]  # market -> candle_facts
    phase: str  # 'scoring', then 'done'
    passes: int  # 1, plus one per refine after completion
    ranking: NotRequired[str]  # 'steadiest' once a refine reported the steadiest set


# Each signal of the composite: (name, indicator column, weight); trend strength multiplies them.
SIGNALS = (
    ("trend", "ema_trend", 0.35),
    ("momentum", "rsi_14", 0.25),
    ("macd", "macd_hist", 0.25),
    ("band", "bb_pctb", 0.15),
)
STRENGTH = ("strength", "adx_14")
COMPONENTS = tuple(name for name, _, _ in SIGNALS) + (STRENGTH[0],)


class Part(NamedTuple):
    """One component of the composite at each view (latest first): contribution = weight x normalised."""

    normalised: np.ndarray
    weight: np.ndarray
    contribution: np.ndarray


def contributions(frame: pd.DataFrame, views: int, kind: str) -> dict[str, Part]:
    """Per component, at each of the last `views` candles (latest first): the normalised value
    the composite uses, its weight, and its contribution. The score is the sum of the
    contributions: half of each signal counts as it is, the other half scaled by trend strength,
    and that scaled half is credited to trend strength (ADX)."""
    rows = frame.iloc[::-1].iloc[:views]
    col = {
        name: rows[name].to_numpy(dtype=float)
        for name in ("close", "atr_14", "ema_trend", "rsi_14", "macd_hist", "bb_pctb", "adx_14")
    }
    atr_share = np.clip(col["atr_14"] / col["close"], 1e-12, None)
    normalised = {
        "trend": np.clip(col["ema_trend"] / (3 * atr_share), -1, 1),
        "momentum": np.clip((col["rsi_14"] - 50) / 25, -1, 1),
        "macd": np.clip(col["macd_hist"] / np.clip(col["atr_14"], 1e-300, None), -1, 1),
        "band": np.clip(2 * col["bb_pctb"] - 1, -1, 1),
        "strength": np.clip(col["adx_14"] / 40, 0, 1),
    }
    sign = -1.0 if kind == "exit" else 1.0
    parts: dict[str, Part] = {}
    for name, _, weight in SIGNALS:
        w = np.full(len(rows), sign * 0.5 * weight)
        parts[name] = Part(normalised[name], w, w * normalised[name])
    w = sign * 0.5 * sum(weight * normalised[name] for name, _, weight in SIGNALS)
    parts["strength"] = Part(normalised["strength"], w, w * normalised["strength"])
    return parts


def composite_scores(frame: pd.DataFrame, views: int, kind: str) -> list[float]:
    """The composite score at each of the last `views` candles, latest first: the sum of
    `contributions` (-1 where an indicator has no value yet)."""
    return summed(contributions(frame, views, kind))


def summed(parts: dict[str, Part]) -> list[float]:
    """The scores `contributions` add up to, latest first, rounded to 6 decimals."""
    score = cast(np.ndarray, sum(parts[name].contribution for name in COMPONENTS))
    return [round(float(v), 6) if np.isfinite(v) else -1.0 for v in score]


def latest_breakdown(parts: dict[str, Part]) -> dict[str, list[float]]:
    """component -> [normalised, weight, contribution] at the latest candle of `contributions`,
    the same numbers the score adds up (analysis/explain.py words them)."""
    # 9 decimals: the sum stays within 3e-9 of the score's own (kept to 6), in half the bytes.
    return {name: [round(float(v[0]), 9) for v in parts[name]] for name in COMPONENTS}


def top_k_stability(scores: dict[str, list[float]], top: list[str], k: int) -> tuple[dict[str, float], float]:
    """P(in top K) per market across views, and the mean of it over `top` (the confidence)."""
    symbols = list(scores)
    matrix = np.array([scores[s] for s in symbols])  # markets x views
    order = np.argsort(-matrix, axis=0, kind="stable")
    in_top = np.zeros_like(matrix, dtype=bool)
    np.put_along_axis(in_top, order[:k], True, axis=0)
    share = in_top.mean(axis=1)
    p_in_top = {s: round(float(p), 6) for s, p in zip(symbols, share)}
    return p_in_top, float(np.mean([p_in_top[s] for s in top]))


class ScoreStrategy:
    name = "score"

    def initial_state(self, config: RankingConfig, markets: list[str]) -> ScoreState:
        return {
            "markets": markets,
            "pending": markets,
            "views": config.views,
            "scores": {},
            "snapshots": {},
            "phase": "scoring",
            "passes": 1,
        }

    def step(self, inp: StepInput) -> StepOutcome:
        state = cast(ScoreState, dict(inp.state))
        if state["phase"] == "done":
            return self._next_pass(inp, state)
        if state["pending"]:
            return self._score_batch(inp, state)
        return self._order(inp, state)

    def _score_batch(self, inp: StepInput, state: ScoreState) -> StepOutcome:
        batch, rest = state["pending"][: inp.config.batch_size], state["pending"][inp.config.batch_size :]
        scores, snapshots = dict(state["scores"]), dict(state["snapshots"])
        breakdown, facts = dict(state.get("breakdown", {})), dict(state.get("facts", {}))
        for symbol, candles in inp.load_candles(batch).items():
            frame = indicator_frame(candles)
            parts = contributions(frame, state["views"], inp.config.kind)
            scores[symbol] = summed(parts)
            snapshots[symbol] = snapshot_at(frame)
            breakdown[symbol] = latest_breakdown(parts)
            facts[symbol] = candle_facts(candles)
        leaders = sorted(scores, key=lambda s: (-scores[s][0], s))[:3]
        state.update(
            {
                "pending": rest,
                "scores": scores,
                "snapshots": snapshots,
                "leaders": leaders,
                "breakdown": breakdown,
                "facts": facts,
            }
        )
        done_share = 1 - len(rest) / len(state["markets"])
        return StepOutcome(
            state=state, progress=SCORING_SHARE * done_share, confidence=0.0, done=False, result=[]
        )

    def _order(self, inp: StepInput, state: ScoreState) -> StepOutcome:
        k = inp.config.top_k
        latest = {s: v[0] for s, v in state["scores"].items()}
        ranked = sorted(state["markets"], key=lambda s: (-latest[s], s))
        p_in_top, confidence = top_k_stability(state["scores"], ranked[:k], k)
        result = [
            {"rank": i + 1, "symbol": s, "score": latest[s], "indicators": state["snapshots"][s]}
            for i, s in enumerate(ranked[:k])
        ]
        state.update({"phase": "done", "p_in_top_k": p_in_top})
        return StepOutcome(
            state=state,
            progress=1.0,
            confidence=round(confidence, 6),
            done=True,
            result=result,
            note=target_not_reached(confidence, inp.target),
        )

    def _next_pass(self, inp: StepInput, state: ScoreState) -> StepOutcome:
        """The target was raised after completion (refine): report the steadiest top K over the
        same moments, and say in words what changed (see the module docstring)."""
        k = inp.config.top_k
        latest = {s: v[0] for s, v in state["scores"].items()}
        by_latest = sorted(state["markets"], key=lambda s: (-latest[s], s))[:k]
        p_in_top, _ = top_k_stability(state["scores"], by_latest, k)
        steadiest = sorted(state["markets"], key=lambda s: (-p_in_top[s], -latest[s], s))[:k]
        confidence = float(np.mean([p_in_top[s] for s in steadiest]))
        result = [
            {"rank": i + 1, "symbol": s, "score": latest[s], "indicators": state["snapshots"][s]}
            for i, s in enumerate(steadiest)
        ]
        before = steadiest if state.get("ranking") == "steadiest" else by_latest
        changed = len(set(steadiest) - set(before))
        views = state["views"]
        if changed:
            note = (
                f"refined: the {k} markets most often in the top {k} over the last {views} "
                f"candles ({changed} changed)"
            )
        else:
            note = (
                f"no steadier top {k} exists in the last {views} candles: these markets are "
                f"as sure as the indicators get"
            )
        reached = target_not_reached(confidence, inp.target)
        state.update(
            {"phase": "done", "p_in_top_k": p_in_top, "ranking": "steadiest", "passes": state["passes"] + 1}
        )
        return StepOutcome(
            state=state,
            progress=1.0,
            confidence=round(confidence, 6),
            done=True,
            result=result,
            note=note + (f"; {reached}" if reached else ""),
        )
