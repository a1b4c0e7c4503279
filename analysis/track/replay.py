"""The walk-forward replay of the `score` strategy over stored candles: at each decision time t,
the pick record a live analysis started at t would have left, from candles closed by t only.

Same code path as a live analysis: every market's indicators come from indicators.indicator_frame
and its score from score.composite_scores, and markets are chosen and ordered by the rules of
config_factory (the N most traded by 24 h quote volume AS OF t, leaving out excluded bases and
markets whose window cannot be ranked) and of ScoreStrategy (score descending, then symbol).

Speed: indicators are computed ONCE per market over its whole stored series and read at the row
of each decision. For causal indicators a row's value computed on the whole series equals the
one computed on the candles up to it (tests/test_track_replay.py checks it, and the look-ahead
test garbles the future). A live analysis computes them on its last WINDOW_CANDLES candles
instead, so its EMAs start later: the scores agree to about 1e-9 relative, which can move a
6-decimal rounded score by 1e-6, never a ranking unless two markets tie at that precision
(docs/track-record.md).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.errors import InvalidConfig
from analysis.markets.base import TIMEFRAMES
from analysis.markets.indicators import WARMUP_CANDLES, indicator_frame
from analysis.ranking.strategies.score import composite_scores
from analysis.track.baselines import trailing_series
from analysis.track.model import PickRecord, Ranked

LLM_REFUSAL = (
    "the llm strategy is not replayed: a language model has seen that history in "
    "training, so its past picks would look better than it can do"
)


@dataclass(frozen=True)
class ReplayPlan:
    """What to replay. Times are ms UTC; decisions are the candle closes t with
    start <= t <= end and t a multiple of `every_bars` bars (aligned to UTC midnight)."""

    timeframe: str
    k: int
    horizons: tuple[int, ...]
    markets: int | None = None  # the N most traded as of t...
    symbols: tuple[str, ...] | None = None  # ...or these markets
    start_ms: int | None = None
    end_ms: int | None = None
    every_bars: int = 1
    window: int = 500  # WINDOW_CANDLES: what a live analysis ranks
    views: int = 12  # SCORE_VIEWS: a live analysis needs WARMUP + views candles
    max_thin: float = 0.05  # MAX_THIN_SHARE
    excluded_bases: tuple[str, ...] = ()
    source: str = "csv"  # the data source's label, for the records


@dataclass(frozen=True)
class MarketHistory:
    """One market's whole stored series, scored once: per candle, as of its close."""

    symbol: str
    closes_ms: np.ndarray  # close time of each candle (ms)
    score: np.ndarray  # composite score as a live analysis ranking up to this candle
    rankable: np.ndarray  # bool: a live analysis would accept this market here
    quote_volume: np.ndarray  # 24 h quote volume (what `markets=N` picks by)
    baselines: dict[str, np.ndarray]  # trailing_series(): the volume and momentum baselines


def market_history(symbol: str, frame: pd.DataFrame, plan: ReplayPlan) -> MarketHistory:
    """Score every candle of `frame` once (see the module docstring for why this is exact)."""
    step_s = TIMEFRAMES[plan.timeframe]
    scores = composite_scores(indicator_frame(frame), len(frame), "rank")[::-1]
    # config_factory's window check at every candle: enough candles in the last `window`, and
    # few enough without trades (base.window_problem's rules, over rolling windows).
    seen = np.minimum(np.arange(1, len(frame) + 1), plan.window)
    quiet = (frame["volume"] <= 0).astype(int).rolling(plan.window, min_periods=1).sum().to_numpy()
    rankable = (seen >= WARMUP_CANDLES + plan.views) & (quiet / seen <= plan.max_thin)
    per_day = max(1, 86400 // step_s)
    quote = (frame["close"] * frame["volume"]).rolling(per_day, min_periods=1).sum().to_numpy()
    return MarketHistory(
        symbol=symbol,
        closes_ms=frame.index.as_unit("ms").asi8 + step_s * 1000,
        score=np.asarray(scores, dtype=float),
        rankable=rankable,
        quote_volume=quote,
        baselines={n: v.to_numpy() for n, v in trailing_series(frame).items()},
    )


def decision_times(histories: Sequence[MarketHistory], plan: ReplayPlan) -> list[int]:
    step_ms = TIMEFRAMES[plan.timeframe] * 1000
    every_ms = plan.every_bars * step_ms
    times = (
        np.unique(np.concatenate([h.closes_ms for h in histories]))
        if histories
        else np.array([], dtype=np.int64)
    )
    return [
        int(t)
        for t in times
        if (plan.start_ms is None or t >= plan.start_ms)
        and (plan.end_ms is None or t <= plan.end_ms)
        and t % every_ms == 0
    ]


def decide(
    histories: Sequence[MarketHistory], t: int, plan: ReplayPlan
) -> tuple[PickRecord, dict[str, dict[str, float]]] | None:
    """The record of a live analysis started at `t` and the baselines' values, or None when a
    live analysis would have been refused (too few rankable markets, a named one not rankable)."""
    rows = {h.symbol: int(np.searchsorted(h.closes_ms, t, side="right")) - 1 for h in histories}
    live = {h.symbol: h for h in histories if rows[h.symbol] >= 0}
    ok = {s: bool(h.rankable[rows[s]]) for s, h in live.items()}
    if plan.symbols is not None:
        if not all(ok.get(s, False) for s in plan.symbols):
            return None
        chosen = list(plan.symbols)
    else:
        excluded = set(plan.excluded_bases)
        by_volume = sorted(
            (s for s in live if s.split("/", 1)[0] not in excluded),
            key=lambda s: (-float(live[s].quote_volume[rows[s]]), s),
        )
        chosen = [s for s in by_volume if ok[s]][: plan.markets]
        if plan.markets is not None and len(chosen) < plan.markets:
            return None
    if len(chosen) <= plan.k:
        return None
    score = {s: float(live[s].score[rows[s]]) for s in chosen}
    ranked = sorted(chosen, key=lambda s: (-score[s], s))  # ScoreStrategy._order's order
    record = PickRecord(
        t=t,
        timeframe=plan.timeframe,
        source=plan.source,
        strategy="score",
        model=None,
        k=plan.k,
        analysis_id="",
        schedule_id=None,
        universe=tuple(Ranked(s, score[s], i + 1) for i, s in enumerate(ranked)),
    )
    baselines = {
        name: {s: float(live[s].baselines[name][rows[s]]) for s in chosen} for name in ("volume", "momentum")
    }
    return record, baselines


def replay_records(
    candles: Mapping[str, pd.DataFrame], plan: ReplayPlan
) -> list[tuple[PickRecord, dict[str, dict[str, float]]]]:
    """Every decision of the plan, oldest first (see decide())."""
    if plan.symbols is not None:
        missing = [s for s in plan.symbols if s not in candles]
        if missing:
            raise InvalidConfig(f"no stored {plan.timeframe} candles for {', '.join(missing[:5])}")
    histories = [
        market_history(s, frame, plan)
        for s, frame in sorted(candles.items())
        if len(frame) and (plan.symbols is None or s in plan.symbols)
    ]
    decided = (decide(histories, t, plan) for t in decision_times(histories, plan))
    return [d for d in decided if d is not None]
