"""The pick record a completed analysis leaves (issue #21): written by the step that completed it
(analysis/engine/step_runner.py), once per completion, a refine's completion again.

The record holds the WHOLE universe as ranked at decision time t: the reported top K in its
order, then every other market by the strategy's own score (score: the latest composite score;
llm: the judge model's strength). t is the close of the newest candle the analysis ranked
(`config.candles_to`), so the record reads nothing after t: the data snapshot ends there.

A scheduled run's record also says how the schedule's previous top K did since its decision
(`since_previous`), from this run's own snapshot (candles up to this t, nothing later).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.markets.base import TIMEFRAMES
from analysis.models import RankingConfig, StepOutcome, source_name
from analysis.track.model import PickRecord, Ranked
from analysis.track.record_store import RecordStore, StoredRecord, group_name, record_id
from analysis.track.returns import closes_at, closes_of, exit_close_ms

logger = logging.getLogger(__name__)
LoadCandles = Callable[[list[str]], dict[str, pd.DataFrame]]


def strategy_label(config: RankingConfig) -> str:
    """What records are grouped by: the strategy, with '-exit' for an exit analysis (its top K
    are the markets to leave, so its edge has the opposite sign)."""
    name = config.strategy.split(":", 1)[0]
    return f"{name}-exit" if config.kind == "exit" else name


def market_scores(config: RankingConfig, state: Mapping[str, Any]) -> dict[str, float]:
    """Each market's score as the strategy ranked it: score's latest composite score, llm's
    model strength (p in top K for an estimate stored before strengths were)."""
    if isinstance(state.get("scores"), dict):
        return {s: float(v[0]) for s, v in state["scores"].items() if v}
    estimate = state.get("estimate") or {}
    return {s: float(v) for s, v in (estimate.get("strengths") or estimate.get("p_in_top_k") or {}).items()}


def universe_of(config: RankingConfig, state: Mapping[str, Any], result: list) -> tuple[Ranked, ...]:
    """The reported top K in order, then every other market by score (ties by symbol); a market
    the strategy gave no score (none should lack one) ranks last with score 0."""
    scores = market_scores(config, state)
    reported = [item["symbol"] for item in result]
    for item in result:
        scores.setdefault(item["symbol"], float(item["score"]))
    markets = list(dict.fromkeys(list(state.get("markets") or config.markets)))
    rest = sorted(
        (s for s in markets if s not in set(reported)),
        key=lambda s: (s not in scores, -scores.get(s, 0.0), s),
    )
    return tuple(Ranked(s, round(scores.get(s, 0.0), 6), i + 1) for i, s in enumerate(reported + rest))


def decision_time_ms(config: RankingConfig, load: LoadCandles) -> int:
    """t: the close of the newest ranked candle. From the config (the factory sets it); an older
    config without it: from the snapshot's newest candle."""
    if config.candles_to:
        return int(config.candles_to) * 1000
    frames = load(list(config.markets))
    newest = max(int(f.index[-1].value // 10**6) for f in frames.values() if len(f))
    return newest + TIMEFRAMES[config.timeframe] * 1000


def build_record(
    analysis_id: str,
    seq: int,
    config: RankingConfig,
    outcome: StepOutcome,
    *,
    model: str,
    schedule: str,
    t_ms: int,
) -> StoredRecord:
    record = PickRecord(
        t=t_ms,
        timeframe=config.timeframe,
        source=source_name(config.data_source),
        strategy=strategy_label(config),
        model=model if config.strategy == "llm" else None,
        k=min(config.top_k, len(config.markets)),
        analysis_id=analysis_id,
        schedule_id=schedule or None,
        universe=universe_of(config, outcome.state, list(outcome.result)),
    )
    record.check()
    return StoredRecord(
        id=record_id(analysis_id, seq),
        record=record,
        data_source=config.data_source,
        kind=config.kind,
        group=group_name(record.strategy, record.timeframe, record.source),
    )


def since_previous(previous: StoredRecord, t_ms: int, load: LoadCandles) -> dict[str, Any] | None:
    """How `previous`'s top K did from its entry (the bar after its decision) to `t_ms`, against
    its whole universe, from candles closed by `t_ms` only; None when less than one bar passed
    since its entry."""
    rec = previous.record
    step_ms = TIMEFRAMES[rec.timeframe] * 1000
    if exit_close_ms(rec.t, rec.timeframe, 1) > t_ms:
        return None
    frames = load(rec.symbols())
    exit_open = t_ms - step_ms  # the newest candle closed by t_ms
    returns, missing = {}, []
    for symbol in rec.symbols():
        frame = frames.get(symbol)
        prices, exact = closes_at(
            closes_of(frame) if frame is not None else None, np.array([rec.t, exit_open], dtype=np.int64)
        )
        entry, exit_ = float(prices[0]), float(prices[1])
        if not exact.all():
            missing.append(symbol)
        if np.isfinite(entry) and entry > 0 and np.isfinite(exit_):
            returns[symbol] = exit_ / entry - 1.0
    top = [s for s in rec.top() if s in returns]
    if not top:
        return None
    return {
        "record": previous.id,
        "analysis_id": rec.analysis_id,
        "k": rec.k,
        "top_k": round(float(np.mean([returns[s] for s in top])), 6),
        "universe": round(float(np.mean(list(returns.values()))), 6),
        "from_ms": rec.t,
        "to_ms": t_ms,
        "missing": missing,
    }


def write_completion_record(
    store: RecordStore,
    analysis_id: str,
    seq: int,
    config: RankingConfig,
    outcome: StepOutcome,
    *,
    model: str,
    schedule: str,
    horizons: list[int],
    load: LoadCandles,
    now_s: float,
) -> StoredRecord | None:
    """Write the record of this completion (id `<analysis>:<seq>`); None when it was written
    already (a duplicate delivery cannot get here, but a retried write may)."""
    t_ms = decision_time_ms(config, load)
    stored = build_record(analysis_id, seq, config, outcome, model=model, schedule=schedule, t_ms=t_ms)
    if schedule:
        previous_id = store.previous_of_schedule(schedule, t_ms)
        previous = store.get(previous_id) if previous_id else None
        if previous is not None:
            since = since_previous(previous, t_ms, load)
            if since is not None:
                stored.extra["since_previous"] = since
    due_s = exit_close_ms(t_ms, config.timeframe, min(horizons)) / 1000
    if not store.write(stored, due_s=due_s, now_s=now_s):
        return None
    logger.info(
        "[%s seq=%s] pick record %s written: t=%s, %d markets, top %d (%s)",
        analysis_id,
        seq,
        stored.id,
        pd.Timestamp(t_ms, unit="ms", tz="UTC").isoformat(),
        len(stored.record.universe),
        stored.record.k,
        stored.group,
    )
    return stored
