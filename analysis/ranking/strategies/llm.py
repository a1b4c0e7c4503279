"""The `llm` strategy: an LLM judge orders markets for the trader's question; a Plackett–Luce
model of its answers (analysis/ranking/plackett_luce.py) gives the top K and its confidence.

Each call shows `config.list_size` markets (LLM_LIST_SIZE, default 10) and asks for their full
order (listwise). With list_size 2 the strategy asks one pair per call and fits the pairwise
Bradley–Terry model (analysis/ranking/bradley_terry.py), as it did before listwise calls existed; an
analysis keeps the list size it started with.

Steps: step 1 turns each market's indicator snapshot into a one-line summary; every later step
refits the model from the append-only log in the state (orders as {"shown", "ranking", "model"};
pairs as [first, second, winner, model]), so a replayed step is identical and chooses the same
next sets; it stops when the confidence (expected precision@K) reaches the target or the budget
of calls is spent, and otherwise sends one round of calls: sets near the K-th place (listwise)
or pairs near the top-K boundary. Each answer is tagged with the model that gave it, so a refine
that switches to OPENAI_REFINE_MODEL continues the same log. Once it stops, one final step asks
the judge for a short reason per top-K market (LLM_REASONS; analysis/ranking/llm_reasons.py,
docs/explain.md) and completes, so that call has the step protocol's lease, commit and fencing.
"""

import logging
import zlib
from typing import NotRequired, TypedDict, cast

from analysis.errors import JudgeUnavailable
from analysis.markets.facts import candle_facts
from analysis.markets.indicators import indicator_frame, snapshot_at
from analysis.models import RankingConfig, SharedState, StepOutcome
from analysis.ranking import plackett_luce
from analysis.ranking.bradley_terry import (
    Comparison,
    TopKEstimate,
    choose_pairs,
    default_budget,
    estimate_top_k,
    ordered_pairs,
    stop_reason,
)
from analysis.ranking.llm_judge import ListRequest, PairRequest
from analysis.ranking.llm_reasons import ReasonsRequest, ask_reasons
from analysis.ranking.strategies.base import StepInput, target_not_reached

logger = logging.getLogger(__name__)
Estimate = TopKEstimate | plackett_luce.ListEstimate  # pairwise or listwise posterior summary
SUMMARY_SHARE = 0.05  # of the progress bar


class BeforeRefine(TypedDict):
    top: list[str]
    confidence: float


class LLMState(SharedState):
    """The llm strategy's state (JSON in the gist); `log` is append-only."""

    markets: list[str]
    phase: str  # 'summaries', then 'comparing'
    summaries: dict[str, str]  # market -> the line the judge reads
    snapshots: dict[str, dict[str, float]]
    budget: int  # judge answers allowed (pairs, or orders when listwise)
    list_size: NotRequired[int]  # markets per call: 2 is pairwise (older analyses lack it)
    target_seen: float  # the target the budget was sized for
    before_refine: NotRequired[BeforeRefine]  # the top K and confidence when last refined
    facts: NotRequired[dict[str, dict[str, float]]]  # market -> candle_facts
    reasons: NotRequired[dict[str, str]]  # market -> the judge's reason (analysis/ranking/llm_reasons.py)
    reasons_for: NotRequired[list[str]]  # the top K the reasons were asked for
    reasons_error: NotRequired[str]  # why the judge gave none


def market_summary(snapshot: dict[str, float]) -> str:
    """One line a model can read: the indicator snapshot in trader's words."""
    close, atr = snapshot["close"], snapshot["atr_14"]
    return (
        f"last close {close:.6g}; RSI(14) {snapshot['rsi_14']:.1f}; "
        f"MACD histogram {snapshot['macd_hist'] / atr:+.2f} ATR; "
        f"Bollinger %B {snapshot['bb_pctb']:.2f}; ATR(14) {atr / close:.2%} of price; "
        f"ADX(14) {snapshot['adx_14']:.1f}; EMA20 vs EMA50 {snapshot['ema_trend']:+.2%}; "
        f"volume last 24 candles vs previous 24 {snapshot['volume_change']:+.0%}"
    )


def comparisons(state: LLMState) -> list[Comparison]:
    return [Comparison(first, second, winner, model) for first, second, winner, model in state["log"]]


def orders(state: LLMState) -> list[plackett_luce.Order]:
    """The log as listwise orders; a pair [first, second, winner, model] is an order of two."""
    return [
        plackett_luce.Order(tuple(e["shown"]), tuple(e["ranking"]), e["model"])
        if isinstance(e, dict)
        else plackett_luce.Order.from_comparison(Comparison(*e))
        for e in state["log"]
    ]


def listwise(state: LLMState) -> bool:
    return state.get("list_size", 2) > 2


def ranked_top(estimate: "Estimate") -> list[str]:
    """The reported top K, best first."""
    return sorted(estimate.top_k, key=lambda s: (-estimate.strengths[s], s))


def step_seed(config: RankingConfig, log_length: int) -> int:
    """Same config and log -> same seed, so a replayed step chooses the same pairs, and two runs
    of one config with a deterministic judge give the same ranking whatever happened between."""
    return zlib.crc32(f"{config.model_dump_json()}:{log_length}".encode())


def less_settled(state: LLMState, estimate: Estimate, confidence: float) -> str:
    """After a refine, why the same top K may read a lower confidence: the judge's further
    answers disagreed more than the earlier ones, so the order is less settled than it looked."""
    before = state.get("before_refine")
    if not before or sorted(estimate.top_k) != before["top"] or confidence >= before["confidence"] - 1e-6:
        return ""
    return (
        f"same top {len(before['top'])}, confidence {before['confidence']:.2f} before refining: "
        f"the further comparisons disagreed more, so the order is less settled than it looked"
    )


class LLMStrategy:
    name = "llm"

    def initial_state(self, config: RankingConfig, markets: list[str]) -> LLMState:
        list_size = min(config.list_size, len(markets))
        budget = (
            plackett_luce.default_budget(len(markets), list_size)
            if list_size > 2
            else default_budget(len(markets), config.top_k)
        )
        return {
            "markets": markets,
            "phase": "summaries",
            "summaries": {},
            "snapshots": {},
            "log": [],
            "budget": budget,
            "list_size": list_size,
            "target_seen": config.target_confidence,
        }

    def step(self, inp: StepInput) -> StepOutcome:
        state = cast(LLMState, dict(inp.state))
        if state["phase"] == "summaries":
            return self._summarise(inp, state)
        estimate = self._estimate(inp, state)
        if state["phase"] == "reasons":  # the final step: the ranking is done, ask its reasons
            state["phase"] = "comparing"
            if inp.reasons and self._should_stop(estimate, state, inp.target):
                self._ask_reasons(inp, state, ranked_top(estimate))
                return self._outcome(inp, state, estimate)
        if inp.target > state["target_seen"] + 1e-9:
            # Refined: a higher target earns half a budget more calls.
            n = len(state["markets"])
            if listwise(state):
                state["budget"] += plackett_luce.default_budget(n, state["list_size"]) // 2
            else:
                state["budget"] = min(
                    state["budget"] + default_budget(n, inp.config.top_k) // 2, ordered_pairs(n)
                )
            state["target_seen"] = inp.target
            state["before_refine"] = {
                "top": sorted(estimate.top_k),
                "confidence": round(estimate.expected_precision, 6),
            }
        if not self._should_stop(estimate, state, inp.target):
            self._compare_batch(inp, state, estimate)
            estimate = self._estimate(inp, state)
        return self._outcome(inp, state, estimate)

    def _summarise(self, inp: StepInput, state: LLMState) -> StepOutcome:
        candles = inp.load_candles(state["markets"])
        snapshots = {s: snapshot_at(indicator_frame(c)) for s, c in candles.items()}
        state.update(
            {
                "phase": "comparing",
                "snapshots": snapshots,
                "facts": {s: candle_facts(c) for s, c in candles.items()},
                "summaries": {s: market_summary(snap) for s, snap in snapshots.items()},
            }
        )
        return StepOutcome(state=state, progress=SUMMARY_SHARE, confidence=0.0, done=False, result=[])

    def _estimate(self, inp: StepInput, state: LLMState) -> Estimate:
        if listwise(state):
            return plackett_luce.estimate_top_k(
                state["markets"],
                orders(state),
                inp.config.top_k,
                seed=step_seed(inp.config, len(state["log"])),
            )
        return estimate_top_k(
            state["markets"],
            comparisons(state),
            inp.config.top_k,
            seed=step_seed(inp.config, len(state["log"])),
        )

    @staticmethod
    def _should_stop(estimate: Estimate, state: LLMState, target: float) -> bool:
        # The same rule the simulation in `make bench-ranking` stops by.
        if isinstance(estimate, plackett_luce.ListEstimate):
            return (
                plackett_luce.stop_reason(estimate, len(state["log"]), target=target, budget=state["budget"])
                is not None
            )
        return stop_reason(estimate, len(state["log"]), target=target, budget=state["budget"]) is not None

    def _compare_batch(self, inp: StepInput, state: LLMState, estimate: Estimate) -> None:
        if isinstance(estimate, plackett_luce.ListEstimate):
            return self._rank_batch(inp, state, estimate)
        room = state["budget"] - len(state["log"])
        pairs = choose_pairs(
            state["markets"],
            comparisons(state),
            inp.config.top_k,
            min(inp.config.batch_size, room),
            seed=step_seed(inp.config, len(state["log"])),
            estimate=estimate,
        )
        if not pairs:  # every pair asked both ways round (a log from before the budget's cap)
            state["budget"] = len(state["log"])
            return
        summaries = state["summaries"]
        requests = [
            PairRequest(
                first=a,
                second=b,
                first_summary=summaries[a],
                second_summary=summaries[b],
                question=inp.config.prompt,
            )
            for a, b in pairs
        ]
        # What the calls cost is counted in the gist by the step runner (Gist.spend).
        if inp.judge is None:
            raise JudgeUnavailable("no LLM judge is configured for this worker")
        verdicts, _ = inp.judge.compare_many(requests, model=inp.model)
        state["log"] = state["log"] + [[v.first, v.second, v.winner, v.model] for v in verdicts]

    def _rank_batch(self, inp: StepInput, state: LLMState, estimate: plackett_luce.ListEstimate) -> None:
        markets, size = state["markets"], state["list_size"]
        calls = min(
            plackett_luce.calls_per_round(len(markets), size, inp.config.batch_size),
            state["budget"] - len(state["log"]),
        )
        sets = plackett_luce.choose_sets(
            markets,
            orders(state),
            inp.config.top_k,
            size,
            calls,
            seed=step_seed(inp.config, len(state["log"])),
            estimate=estimate,
        )
        if not sets:  # no display order left that was not shown (only with very few markets)
            state["budget"] = len(state["log"])
            return
        summaries = state["summaries"]
        requests = [
            ListRequest(shown=shown, summaries=tuple(summaries[s] for s in shown), question=inp.config.prompt)
            for shown in sets
        ]
        if inp.judge is None:
            raise JudgeUnavailable("no LLM judge is configured for this worker")
        verdicts, _ = inp.judge.rank_many(requests, model=inp.model)
        state["log"] = state["log"] + [
            {"shown": list(v.shown), "ranking": list(v.ranking), "model": v.model} for v in verdicts
        ]

    def _ask_reasons(self, inp: StepInput, state: LLMState, ranked: list[str]) -> None:
        """One call for a reason per top-K market; a judge that gives none leaves the ranking
        complete, with why in `reasons_error` (its spend is counted all the same)."""
        request = ReasonsRequest(
            ranked=tuple(ranked),
            question=inp.config.prompt,
            summaries=tuple(state["summaries"][s] for s in ranked),
        )
        state["reasons_for"] = ranked
        try:
            if inp.judge is None:
                raise JudgeUnavailable("no LLM judge is configured for this worker")
            state["reasons"], _ = ask_reasons(inp.judge, request, model=inp.model)
            state.pop("reasons_error", None)
        except JudgeUnavailable as exc:
            logger.warning("[%s seq=%s] the judge gave no reasons: %s", inp.analysis_id, inp.seq, exc)
            state["reasons"], state["reasons_error"] = {}, str(exc)[:300]

    def _outcome(self, inp: StepInput, state: LLMState, estimate: Estimate) -> StepOutcome:
        confidence = round(estimate.expected_precision, 6)
        state["estimate"] = {
            "p_exact": round(estimate.p_exact, 6),
            "first_bias": round(estimate.first_bias, 4),
            "p_in_top_k": {s: round(p, 4) for s, p in estimate.p_in_top_k.items()},
            # every market's strength: the pick record ranks the whole universe
            "strengths": {s: round(v, 4) for s, v in estimate.strengths.items()},
        }
        ranked = ranked_top(estimate)
        state["leaders"] = ranked[:3]
        done = self._should_stop(estimate, state, inp.target)
        if done and inp.reasons and state.get("reasons_for") != ranked:
            state["phase"] = "reasons"  # one more step asks the judge why (under the protocol)
            done = False
        used = len(state["log"]) / max(state["budget"], 1)
        progress = SUMMARY_SHARE + (1 - SUMMARY_SHARE) * max(min(confidence / inp.target, 1.0), used)
        result = (
            [
                {
                    "rank": i + 1,
                    "symbol": s,
                    "score": round(estimate.strengths[s], 4),
                    "indicators": state["snapshots"][s],
                }
                for i, s in enumerate(ranked)
            ]
            if done
            else []
        )
        note = ""
        if done:
            note = target_not_reached(confidence, inp.target)
            if note:
                unit = "LLM calls" if listwise(state) else "comparisons"
                note += f" after {len(state['log'])} {unit} (budget)"
            note = "; ".join(n for n in (less_settled(state, estimate, confidence), note) if n)
        return StepOutcome(
            state=state,
            progress=1.0 if done else min(progress, 0.99),
            confidence=confidence,
            done=done,
            result=result,
            note=note,
        )
