"""Top-K selection from noisy pairwise comparisons: the statistics of the `llm` strategy.

The model
    A judge shown `first` then `second` prefers `first` with probability
        sigmoid(s[first] - s[second] + first_bias)
    (Bradley-Terry with a first-position bias). Priors: s ~ N(0, scale^2) independently, the
    scale unknown with a weakly informative half-Cauchy(0, 1) prior (on a grid from 0.25 to 12),
    and first_bias ~ N(0, 1). The scale is the judge's sharpness (its slope on the latent
    strengths), so a sharp and a noisy judge are both handled without being told which they
    are. The `model` field of a comparison is kept for the record; every judge shares one
    strength scale and one bias.

The fit (pure numpy, deterministic)
    Every call refits from the whole append-only log, so the same log and seed give the same
    answer and a replayed step is identical. For each scale on the grid, expectation
    propagation (EP) gives a Gaussian matching the posterior's mean and covariance, and its
    evidence. Draws from the evidence-weighted mixture of those Gaussians are then importance-
    weighted by the exact posterior density (logistic likelihood, scale averaged over its
    prior), so the answer does not rest on the Gaussian being right.

What the confidence means
    `expected_precision` is the posterior expectation of precision@K of the reported top K,
    i.e. the expected share of the K reported symbols that truly are among the K strongest.
    The reported set is the K symbols with the highest `p_in_top_k` (the set that maximises
    that expectation), so the confidence is the mean of their `p_in_top_k`. `p_exact` is the
    posterior probability that the reported set is exactly the true top-K set (order inside
    the set not counted). In simulation (bench/ranking_bench.py, 200 runs per setting) the
    realised precision@K at the stop is within 0.02 of the mean reported confidence for a
    sharp and a noisy judge. `p_exact` rests on the posterior's far tails and is the more
    fragile number: there it ran above the realised exact-set rate (0.25 vs 0.22 for the sharp
    judge at target 0.9, 0.036 vs 0.020 for the noisy one at 0.8).

Choosing comparisons
    Symbols never compared come first, paired as a random matching, so the first batches
    cover every symbol. After that each candidate pair is scored by one-step lookahead (the
    knowledge gradient): the expected gain in expected precision@K once its outcome is known,
    computed by reweighting posterior draws. That favours pairs at the top-K boundary whose
    outcome can change the answer. A batch takes the best pairs with no pair twice and each
    symbol in at most two pairs (the batch is judged concurrently, so it should not hinge on
    one symbol); which symbol is shown first is drawn at random, which keeps the position bias
    identifiable. An ordered pair is never asked twice: a second look at a pair shows it the
    other way round, and a pair seen both ways is done. The model counts every answer as
    independent evidence, which a real LLM asked the same prompt again (at temperature 0, or
    even above) does not give; so the budget is at most n(n-1) comparisons.

The fit lives in bt_expectation_propagation.py and bt_posterior.py, the log's checks in bt_log.py
and the choice of pairs in bt_pair_choice.py; this module is the entry point other code imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.ranking.bt_log import Comparison, _check_inputs, _comparison_counts, _index_log
from analysis.ranking.bt_pair_choice import (
    DESIGN_DRAWS,
    MAX_PAIRS_PER_SYMBOL,
    _all_pairs_randomly_oriented,
    _lookahead_gain,
    _not_yet_asked,
    _pick_batch,
    _resample,
)
from analysis.ranking.bt_posterior import DEFAULT_SAMPLES, _posterior
from analysis.ranking.top_k_posterior import SCALE_GRID, best_set, top_k_membership

# Re-exported: tests and benches reach these through this module.
__all__ = [
    "SCALE_GRID",
    "Comparison",
    "TopKEstimate",
    "_lookahead_gain",
    "_posterior",
    "choose_pairs",
    "default_budget",
    "estimate_top_k",
    "ordered_pairs",
    "stop_reason",
]


@dataclass(frozen=True)
class TopKEstimate:
    """The current answer and how sure it is (the module docstring defines each number)."""

    top_k: list[str]  # best first, by posterior mean strength
    p_in_top_k: dict[str, float]
    expected_precision: float
    p_exact: float
    strengths: dict[str, float]  # posterior mean, centred on 0
    first_bias: float  # posterior mean, in logits


def ordered_pairs(n_markets: int) -> int:
    """How many comparisons there are to ask: each pair once each way round."""
    return n_markets * (n_markets - 1)


def default_budget(n_markets: int, k: int) -> int:
    """Maximum comparisons for one analysis: 10 per market (300 for 30 markets), and at most
    every pair both ways round (`ordered_pairs`: 90 for 10 markets, 6 for 3).

    In simulation that lets a noisy judge (slope 1.2) reach expected precision 0.8 for a top
    third most of the time, and costs about two thirds of judging all pairs once for 30
    markets (all pairs grow quadratically, this linearly). `k` is part of the signature for a
    K-aware rule; the budget does not depend on it yet.
    """
    del k
    return min(10 * n_markets, ordered_pairs(n_markets))


def stop_reason(estimate: TopKEstimate, comparisons_made: int, *, target: float, budget: int) -> str | None:
    """Why the analysis stops now: "target reached", "target not reached" (budget spent), or
    None while it should go on comparing."""
    if estimate.expected_precision >= target:
        return "target reached"
    if comparisons_made >= budget:
        return "target not reached"
    return None


def estimate_top_k(
    symbols: list[str],
    comparisons: list[Comparison],
    k: int,
    *,
    seed: int,
    samples: int = DEFAULT_SAMPLES,
) -> TopKEstimate:
    """Fit the model to the whole log; report the top K and its confidence.

    Raises ValueError for k outside 1..len(symbols), repeated symbols, or a comparison that
    names an unknown symbol, pairs a symbol with itself, or has a winner outside its pair.
    """
    _check_inputs(symbols, k, samples)
    posterior = _posterior(tuple(symbols), tuple(comparisons), seed, samples)
    in_top = top_k_membership(posterior.strengths, k)
    p_in_top = posterior.weights @ in_top
    mean_strength = posterior.weights @ posterior.strengths
    chosen = best_set(p_in_top, mean_strength, k)
    # A draw's top K has exactly K members, so containing all K chosen means equal sets.
    exact = np.all(in_top[:, chosen] > 0, axis=1)
    return TopKEstimate(
        top_k=[symbols[i] for i in chosen],
        p_in_top_k={s: float(p) for s, p in zip(symbols, p_in_top)},
        expected_precision=float(p_in_top[chosen].mean()),
        p_exact=float(posterior.weights @ exact),
        strengths={s: float(v) for s, v in zip(symbols, mean_strength - mean_strength.mean())},
        first_bias=float(posterior.weights @ posterior.bias),
    )


def choose_pairs(
    symbols: list[str],
    comparisons: list[Comparison],
    k: int,
    batch: int,
    *,
    seed: int,
    estimate: TopKEstimate | None = None,
) -> list[tuple[str, str]]:
    """`batch` distinct pairs (first, second) to judge next, where they matter most.

    Never an ordered pair the log already holds; fewer only when the symbols do not make that
    many distinct pairs not yet asked. `estimate` may be passed by callers that have one; the
    choice uses the same posterior draws (cached per log and seed) either way.
    """
    del estimate
    _check_inputs(symbols, k, DEFAULT_SAMPLES)
    n = len(symbols)
    if batch <= 0 or n < 2:
        return []
    log = _index_log(symbols, comparisons)
    counts = _comparison_counts(log, n)
    posterior = _posterior(tuple(symbols), tuple(comparisons), seed, DEFAULT_SAMPLES)
    rng = np.random.default_rng([seed, len(comparisons), 2])
    pairs = _not_yet_asked(_all_pairs_randomly_oriented(n, rng), log, n)
    draws = _resample(posterior.weights, DESIGN_DRAWS, rng)
    gain = _lookahead_gain(posterior.strengths[draws], posterior.bias[draws], pairs, k)
    per_symbol = max(MAX_PAIRS_PER_SYMBOL, math.ceil(2 * batch / n))
    chosen = _pick_batch(pairs, gain, counts == 0, batch, per_symbol, rng)
    return [(symbols[first], symbols[second]) for first, second in chosen]
