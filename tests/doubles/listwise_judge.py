"""A simulated listwise judge (Plackett–Luce over known strengths) and the listwise `llm` loop run
against it; used by bench/listwise_bench.py and tests/test_plackett_luce.py. Nothing here touches
the network.

The judge orders a shown list by picking the best of the markets left, again and again: at pick j
(0 = the top of its answer) a market shown at display position p is picked with probability
proportional to exp(sharpness(j) * a[market] + bias[p]), a ~ N(0, 1). `first_bias` is added to the
market shown first. With two markets and a constant sharpness this is the pairwise
`SimulatedJudge` (P(first wins) = sigmoid(slope * (a1 - a2) + first_bias)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.ranking.plackett_luce import (
    ListEstimate,
    Order,
    calls_per_round,
    choose_sets,
    default_budget,
    estimate_top_k,
    stop_reason,
)


@dataclass(frozen=True)
class ListwiseJudge:
    strengths: dict[str, float]
    sharpness_top: float = 3.0
    sharpness_bottom: float | None = None  # None: constant; else linear from top to bottom pick
    first_bias: float = 0.8

    @classmethod
    def random(cls, n_markets: int, *, seed: int, **traits) -> ListwiseJudge:
        rng = np.random.default_rng([seed, 0])
        symbols = [f"M{i:02d}" for i in range(n_markets)]
        return cls(dict(zip(symbols, rng.standard_normal(n_markets).tolist())), **traits)

    @property
    def symbols(self) -> list[str]:
        return list(self.strengths)

    def true_top_k(self, k: int) -> list[str]:
        return sorted(self.strengths, key=self.strengths.get, reverse=True)[:k]

    def sharpness(self, pick: int, m: int) -> float:
        if self.sharpness_bottom is None or m <= 2:
            return self.sharpness_top
        return self.sharpness_top + (self.sharpness_bottom - self.sharpness_top) * pick / (m - 2)

    def rank(self, shown: tuple[str, ...], rng: np.random.Generator, model: str = "sim") -> Order:
        left = list(range(len(shown)))
        ranking: list[str] = []
        m = len(shown)
        for pick in range(m - 1):
            utility = np.array(
                [
                    self.sharpness(pick, m) * self.strengths[shown[p]] + (self.first_bias if p == 0 else 0.0)
                    for p in left
                ]
            )
            prob = np.exp(utility - utility.max())
            chosen = left[int(rng.choice(len(left), p=prob / prob.sum()))]
            ranking.append(shown[chosen])
            left.remove(chosen)
        ranking.append(shown[left[0]])
        return Order(tuple(shown), tuple(ranking), model)


@dataclass(frozen=True)
class ListwiseRun:
    orders: list[Order]
    estimates: list[ListEstimate]  # estimates[i]: after i rounds
    calls: list[int]  # calls[i]: calls made before estimates[i]
    rounds_shown: list[list[tuple[str, ...]]]
    stopped_because: str


def run_listwise(
    judge: ListwiseJudge,
    k: int,
    list_size: int,
    *,
    target: float,
    seed: int,
    budget: int | None = None,
    batch_cap: int = 10,
    max_calls: int | None = None,
) -> ListwiseRun:
    """The strategy's loop: estimate, stop or show one round of sets, repeat. With `max_calls`
    the run ignores the target and goes on until that many calls were made."""
    symbols = judge.symbols
    budget = budget or default_budget(len(symbols), list_size)
    judge_rng = np.random.default_rng([seed, 99])
    per_round = calls_per_round(len(symbols), list_size, batch_cap)
    orders: list[Order] = []
    estimates, calls, rounds = [], [], []
    while True:
        estimate = estimate_top_k(symbols, orders, k, seed=seed)
        estimates.append(estimate)
        calls.append(len(orders))
        if max_calls is not None:
            if len(orders) >= max_calls:
                return ListwiseRun(orders, estimates, calls, rounds, "calls made")
        else:
            reason = stop_reason(estimate, len(orders), target=target, budget=budget)
            if reason is not None:
                return ListwiseRun(orders, estimates, calls, rounds, reason)
        limit = budget if max_calls is None else max_calls
        sets = choose_sets(
            symbols, orders, k, list_size, min(per_round, limit - len(orders)), seed=seed, estimate=estimate
        )
        if not sets:
            return ListwiseRun(orders, estimates, calls, rounds, "no set left")
        rounds.append(sets)
        orders = orders + [judge.rank(shown, judge_rng) for shown in sets]
