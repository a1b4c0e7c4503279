"""A simulated pairwise judge with known strengths, and the `llm` strategy's loop run against it.

The judge prefers the market shown first with probability
    sigmoid(slope * (a[first] - a[second]) + first_bias)
where the latent strengths `a` are drawn from N(0, 1). Benchmarks and tests use it to measure the
statistics in `analysis.ranking.bradley_terry` against a known truth; nothing here touches the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.ranking.bradley_terry import (
    Comparison,
    TopKEstimate,
    choose_pairs,
    estimate_top_k,
    stop_reason,
)


@dataclass(frozen=True)
class SimulatedJudge:
    """Known latent strengths plus a logistic judge with a slope and a first-position bias."""

    strengths: dict[str, float]
    slope: float
    first_bias: float

    @classmethod
    def random(cls, n_markets: int, *, slope: float, first_bias: float, seed: int) -> SimulatedJudge:
        """Markets M00, M01, ... with strengths drawn from N(0, 1)."""
        rng = np.random.default_rng([seed, 0])
        symbols = [f"M{i:02d}" for i in range(n_markets)]
        return cls(dict(zip(symbols, rng.standard_normal(n_markets).tolist())), slope, first_bias)

    @property
    def symbols(self) -> list[str]:
        return list(self.strengths)

    def p_first_wins(self, first: str, second: str) -> float:
        logit = self.slope * (self.strengths[first] - self.strengths[second]) + self.first_bias
        return 0.5 * (1.0 + math.tanh(0.5 * logit))  # sigmoid, without overflow for sharp judges

    def compare(
        self, pairs: list[tuple[str, str]], rng: np.random.Generator, model: str = "sim"
    ) -> list[Comparison]:
        """Judge each (first, second) pair once."""
        draws = rng.random(len(pairs))
        return [
            Comparison(first, second, self._winner(first, second, u), model)
            for (first, second), u in zip(pairs, draws, strict=True)
        ]

    def _winner(self, first: str, second: str, uniform: float) -> str:
        return first if uniform < self.p_first_wins(first, second) else second

    def true_top_k(self, k: int) -> list[str]:
        """The K strongest markets, best first."""
        return sorted(self.strengths, key=self.strengths.get, reverse=True)[:k]


@dataclass(frozen=True)
class SimulatedRun:
    """One adaptive analysis: the log, the estimate after every batch, and why it stopped."""

    comparisons: list[Comparison]
    estimates: list[TopKEstimate]  # estimates[i] is the answer after i batches
    log_sizes: list[int]  # log_sizes[i] comparisons had been made for estimates[i]
    stopped_because: str


def run_until_confident(
    judge: SimulatedJudge,
    k: int,
    *,
    target: float,
    budget: int,
    batch: int = 10,
    seed: int,
) -> SimulatedRun:
    """The strategy's step loop: estimate, stop or judge one batch of chosen pairs, repeat."""
    symbols = judge.symbols
    judge_rng = np.random.default_rng([seed, 99])
    log: list[Comparison] = []
    estimates: list[TopKEstimate] = []
    log_sizes: list[int] = []
    while True:
        estimate = estimate_top_k(symbols, log, k, seed=seed)
        estimates.append(estimate)
        log_sizes.append(len(log))
        reason = stop_reason(estimate, len(log), target=target, budget=budget)
        if reason is not None:
            return SimulatedRun(log, estimates, log_sizes, reason)
        size = min(batch, budget - len(log))
        pairs = choose_pairs(symbols, log, k, size, seed=seed, estimate=estimate)
        if not pairs:  # every pair asked both ways round
            return SimulatedRun(log, estimates, log_sizes, "target not reached")
        log = log + judge.compare(pairs, judge_rng)
