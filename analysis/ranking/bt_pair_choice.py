"""Choosing the next batch of pairs to judge (bradley_terry.py's docstring, "Choosing comparisons")."""

from __future__ import annotations

import numpy as np

from analysis.ranking.bt_log import _Log
from analysis.ranking.top_k_posterior import top_k_membership

# Draws used to score candidate pairs: choosing needs less precision than reporting.
DESIGN_DRAWS = 1000
# Within one batch a symbol takes part in at most this many pairs (more when N is small).
MAX_PAIRS_PER_SYMBOL = 2


def _all_pairs_randomly_oriented(n: int, rng: np.random.Generator) -> np.ndarray:
    """Every unordered pair once, as rows (first, second), the order drawn at random."""
    low, high = np.triu_indices(n, 1)
    swap = rng.random(len(low)) < 0.5
    return np.stack([np.where(swap, high, low), np.where(swap, low, high)], axis=1)


def _not_yet_asked(pairs: np.ndarray, log: _Log, n: int) -> np.ndarray:
    """The pairs turned round where only the other way was asked; those asked both ways dropped."""
    asked = np.zeros((n, n), dtype=bool)
    asked[log.first, log.second] = True
    forward, backward = asked[pairs[:, 0], pairs[:, 1]], asked[pairs[:, 1], pairs[:, 0]]
    pairs = np.where(forward[:, None], pairs[:, ::-1], pairs)
    return pairs[~(forward & backward)]


def _resample(weights: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `size` equally weighted draws (systematic resampling)."""
    positions = (rng.random() + np.arange(size)) / size
    return np.minimum(np.searchsorted(np.cumsum(weights), positions), len(weights) - 1)


def _lookahead_gain(strengths: np.ndarray, bias: np.ndarray, pairs: np.ndarray, k: int) -> np.ndarray:
    """Expected gain in expected precision@K from judging each pair once (knowledge gradient).

    For each outcome the (equally weighted) draws are reweighted by its likelihood; the best
    answer after it is the K largest membership probabilities. Unnormalised masses,
    P(outcome) * P(in top K | outcome), make the expectation over outcomes a plain sum.
    """
    in_top = top_k_membership(strengths, k)
    now = in_top.mean(axis=0)
    logits = strengths[:, pairs[:, 0]] - strengths[:, pairs[:, 1]] + bias[:, None]
    p_first_wins = 1.0 / (1.0 + np.exp(-logits))  # draws x pairs
    mass_if_first = (p_first_wins.T @ in_top) / len(bias)  # pairs x symbols
    mass_if_second = now[None, :] - mass_if_first
    best_now = _top_k_sum(now[None, :], k)
    return (_top_k_sum(mass_if_first, k) + _top_k_sum(mass_if_second, k) - best_now) / k


def _top_k_sum(rows: np.ndarray, k: int) -> np.ndarray:
    return np.partition(rows, rows.shape[1] - k, axis=1)[:, -k:].sum(axis=1)


def _pick_batch(
    pairs: np.ndarray,
    gain: np.ndarray,
    never_compared: np.ndarray,
    batch: int,
    per_symbol: int,
    rng: np.random.Generator,
) -> list[tuple[int, int]]:
    """A random matching of never-compared symbols first, then pairs by decreasing gain, each
    symbol in at most `per_symbol` of them unless that leaves the batch short."""
    uses = np.zeros(len(never_compared), dtype=int)
    taken: set[tuple[int, int]] = set()
    chosen: list[tuple[int, int]] = []

    def take(first: int, second: int) -> None:
        chosen.append((first, second))
        taken.add((min(first, second), max(first, second)))
        uses[first] += 1
        uses[second] += 1

    newcomers = rng.permutation(np.flatnonzero(never_compared))
    for first, second in zip(newcomers[0::2], newcomers[1::2]):
        if len(chosen) < batch:
            take(int(first), int(second))
    by_gain = np.lexsort((rng.random(len(pairs)), -gain))
    for cap in (per_symbol, len(never_compared)):  # the second pass only if the cap left gaps
        for row in by_gain:
            if len(chosen) >= batch:
                return chosen
            first, second = int(pairs[row, 0]), int(pairs[row, 1])
            if (min(first, second), max(first, second)) in taken:
                continue
            if max(uses[first], uses[second]) >= cap:
                continue
            take(first, second)
    return chosen
