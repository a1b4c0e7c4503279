"""The interface every ranking strategy implements: one bounded, deterministic step at a time."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from analysis.models import RankingConfig, StepOutcome
from analysis.ranking.llm_judge import JudgeStats, ListRequest, ListVerdict, PairRequest, Verdict


class Judge(Protocol):
    """What the llm strategy asks of a judge: a verdict for each pair (or an order for each set
    of markets shown), and what it spent.
    Raises JudgeUnavailable when it cannot answer (the step then pauses with the reason)."""

    def compare_many(
        self, requests: list[PairRequest], *, model: str
    ) -> tuple[list[Verdict], JudgeStats]: ...

    def rank_many(
        self, requests: list[ListRequest], *, model: str
    ) -> tuple[list[ListVerdict], JudgeStats]: ...

    def ask_structured(
        self,
        label: str,
        parse: Any,
        encode: Any,
        messages: list[dict[str, str]],
        response_format: dict[str, Any],
        *,
        model: str,
    ) -> tuple[Any, JudgeStats]:
        """One call of another contract (the reasons, analysis/ranking/llm_reasons.py)."""
        ...


@dataclass(frozen=True)
class StepInput:
    """Everything a step may read. A step is a pure function of this (plus the judge's answers)."""

    analysis_id: str
    seq: int
    config: RankingConfig
    state: Mapping[str, Any]  # the strategy's own state (ScoreState, LLMState ...), as stored
    target: float
    model: str
    load_candles: Callable[[list[str]], dict[str, pd.DataFrame]]
    judge: Judge | None = None  # the LLM judge, built only for the llm strategy
    reasons: bool = False  # llm: ask the judge for a reason per top-K market once done (LLM_REASONS)


class Strategy(Protocol):
    name: str

    def initial_state(self, config: RankingConfig, markets: list[str]) -> Mapping[str, Any]:
        """The state INIT stores before step 1."""
        ...

    def step(self, inp: StepInput) -> StepOutcome:
        """Do one bounded piece of work; report progress (0..1), confidence (0..1) and done."""
        ...


def target_not_reached(confidence: float, target: float) -> str:
    """The note shown when an analysis stops below its target."""
    if confidence + 1e-9 >= target:
        return ""
    return f"target {target:.2f} not reached, confidence {confidence:.2f}"
