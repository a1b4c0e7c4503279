"""Top-K selection from noisy pairwise comparisons (the `llm` strategy's statistics).

The model
    A judge shown `first` then `second` prefers `first` with probability
        sigmoid(s[first] - s[second] + first_bias)
    (Bradley-Terry with a first-position bias). Strengths have a prior
    s ~ N(0, scale^2), and the scale is itself unknown: it is given a log-uniform prior over a
    grid from 0.25 to 12 and averaged over. The scale plays the role of the judge's sharpness
    (its slope), so a sharp judge and a noisy judge are both fitted honestly without being told
    which they are. first_bias ~ N(0, 1).

The fit
    Everything is refitted from the append-only comparison log on every call, so the same log and
    seed always give the same answer (a replayed step is identical). For each scale on the grid
    the posterior is approximated by a Laplace fit (Newton steps); the grid points are weighted by
    their Laplace evidence, and draws from that Gaussian mixture are importance-weighted by the
    exact posterior density. The `model` field of a comparison is recorded but not modelled: all
    judges share one strength scale and one bias.

What the confidence means
    `expected_precision` is the posterior expectation of precision@K of the reported top K:
    the expected share of the K reported markets that truly belong to the top K. The reported
    top K is the set that maximises it (the K markets most likely to be in the top K), so it
    equals the mean of their `p_in_top_k`. `p_exact` is the posterior probability that the
    reported set is exactly the true top-K set (order within the set not counted). "True" here
    means: the K largest strengths of the judge as modelled above. In simulation the mean
    realised precision@K matches the mean reported confidence (see bench/ranking_bench.py).

Choosing comparisons
    A batch of pairs is chosen by one-step lookahead (the "knowledge gradient"): for each
    candidate pair, the expected gain in expected precision@K after seeing its outcome, computed
    by reweighting the posterior draws. Symbols never compared yet come first, so an empty log
    starts with a random matching. Within a batch no pair repeats and each symbol appears at
    most twice (the batch is judged concurrently, so it should not hinge on one market), and
    which symbol goes first is drawn at random so the position bias stays identifiable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DEFAULT_SAMPLES = 2000
BIAS_PRIOR_SD = 1.0
# Grid of strength scales (the judge's sharpness), log-uniform prior over it.
SCALE_GRID = tuple(float(x) for x in np.geomspace(0.25, 12.0, 12))
# Within one batch a symbol takes part in at most this many pairs.
MAX_PAIRS_PER_SYMBOL = 2


@dataclass(frozen=True)
class Comparison:
    """One judged pair: the judge saw `first` then `second` and preferred `winner`."""

    first: str
    second: str
    winner: str
    model: str = ""


@dataclass(frozen=True)
class TopKEstimate:
    """The current answer and how sure it is (see the module docstring for the exact meaning)."""

    top_k: list[str]
    p_in_top_k: dict[str, float]
    expected_precision: float
    p_exact: float
    strengths: dict[str, float]
    first_bias: float


@dataclass(frozen=True)
class _Log:
    """The comparison log as index arrays, aggregated per ordered (first, second) pair."""

    first: np.ndarray  # index of the symbol shown first, one entry per ordered pair
    second: np.ndarray
    trials: np.ndarray  # how often this ordered pair was judged
    first_wins: np.ndarray  # how often `first` won it


@dataclass(frozen=True)
class _Posterior:
    """Weighted posterior draws: strengths (draws x symbols), bias (draws,), weights sum to 1."""

    strengths: np.ndarray
    bias: np.ndarray
    weights: np.ndarray


def default_budget(n_markets: int, k: int) -> int:
    """Maximum number of comparisons for one analysis: 10 per market, at least 50.

    Ten comparisons per market is about what a noisy judge needs to separate a top K of a
    third of the markets; past that, more calls buy little. (k is accepted for a future,
    K-aware rule; the budget does not depend on it yet.)
    """
    del k
    return max(50, 10 * n_markets)


def stop_reason(
    estimate: TopKEstimate, comparisons_made: int, *, target: float, budget: int
) -> str | None:
    """Why the analysis stops now ("target reached" / "target not reached"), or None to go on."""
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
    """Fit the model to the whole log and report the top K with its confidence."""
    _check_k(symbols, k)
    posterior = _posterior(tuple(symbols), tuple(comparisons), seed, samples)
    in_top = _top_k_membership(posterior.strengths, k)
    p_in_top = posterior.weights @ in_top
    chosen = _best_set(p_in_top, posterior, k)
    mean_strength = posterior.weights @ posterior.strengths
    mean_strength = mean_strength - mean_strength.mean()
    exact = np.all(in_top[:, chosen], axis=1)  # a draw's top K has K members, so this is equality
    return TopKEstimate(
        top_k=[symbols[i] for i in chosen],
        p_in_top_k={s: float(p) for s, p in zip(symbols, p_in_top)},
        expected_precision=float(p_in_top[chosen].mean()),
        p_exact=float(posterior.weights @ exact),
        strengths={s: float(v) for s, v in zip(symbols, mean_strength)},
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
    """The next `batch` pairs to judge, as (first, second), where they change the answer most.

    `estimate` is accepted for callers that already have one; the choice is computed from the
    same posterior draws (cached per log and seed), so passing it or not gives the same pairs.
    """
    del estimate
    _check_k(symbols, k)
    n = len(symbols)
    if batch <= 0 or n < 2:
        return []
    rng = np.random.default_rng([seed, len(comparisons), 2])
    posterior = _posterior(tuple(symbols), tuple(comparisons), seed, DEFAULT_SAMPLES)
    pairs = _all_pairs_randomly_oriented(n, rng)
    gain = _lookahead_gain(posterior, pairs, k)
    seen = _comparison_counts(_index_log(symbols, comparisons), n)
    chosen = _pick_batch(pairs, gain, seen, batch, rng)
    return [(symbols[f], symbols[s]) for f, s in chosen]


# --- validation and the log -------------------------------------------------------------------


def _check_k(symbols: list[str], k: int) -> None:
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols must be distinct")
    if not 1 <= k <= len(symbols):
        raise ValueError(f"k must be between 1 and the number of symbols ({len(symbols)}), got {k}")


def _index_log(symbols: list[str] | tuple[str, ...], comparisons) -> _Log:
    position = {s: i for i, s in enumerate(symbols)}
    n = len(symbols)
    codes = np.empty(len(comparisons), dtype=np.int64)
    won = np.empty(len(comparisons), dtype=np.int64)
    for row, c in enumerate(comparisons):
        for name in (c.first, c.second):
            if name not in position:
                raise ValueError(f"comparison names unknown symbol {name!r}: {c}")
        if c.first == c.second:
            raise ValueError(f"comparison pairs {c.first!r} with itself: {c}")
        if c.winner not in (c.first, c.second):
            raise ValueError(f"winner {c.winner!r} is neither {c.first!r} nor {c.second!r}")
        codes[row] = position[c.first] * n + position[c.second]
        won[row] = c.winner == c.first
    unique, inverse = np.unique(codes, return_inverse=True)
    return _Log(
        first=unique // n,
        second=unique % n,
        trials=np.bincount(inverse, minlength=len(unique)).astype(float),
        first_wins=np.bincount(inverse, weights=won, minlength=len(unique)),
    )


def _comparison_counts(log: _Log, n: int) -> np.ndarray:
    """How many comparisons each symbol has taken part in."""
    return np.bincount(log.first, log.trials, n) + np.bincount(log.second, log.trials, n)


# --- the fit ----------------------------------------------------------------------------------


def _design(first: np.ndarray, second: np.ndarray, n: int) -> np.ndarray:
    """Rows map parameters (strengths..., bias) to the logit that `first` wins."""
    rows = np.zeros((len(first), n + 1))
    index = np.arange(len(first))
    rows[index, first] = 1.0
    rows[index, second] = -1.0
    rows[:, n] = 1.0
    return rows


def _log_likelihood(logits: np.ndarray, log: _Log) -> np.ndarray:
    """Log-likelihood of the log for logits of shape (draws, ordered pairs)."""
    log_p_first = -np.logaddexp(0.0, -logits)
    # log sigmoid(-x) = log sigmoid(x) - x
    return log.trials @ log_p_first.T - (log.trials - log.first_wins) @ logits.T


def _prior_precision(n: int, scale: float) -> np.ndarray:
    return np.append(np.full(n, scale**-2), BIAS_PRIOR_SD**-2)


@dataclass(frozen=True)
class _GaussianFit:
    """An EP approximation of the posterior at one prior scale."""

    mean: np.ndarray
    precision_cholesky: np.ndarray  # L with L L^T = posterior precision
    log_evidence: float
    site_precision: np.ndarray  # EP site parameters, reused to warm-start the next scale
    site_shift: np.ndarray


@lru_cache(maxsize=8)
def _posterior(
    symbols: tuple[str, ...], comparisons: tuple[Comparison, ...], seed: int, samples: int
) -> _Posterior:
    """Importance-weighted draws from the posterior over strengths, bias and scale."""
    n = len(symbols)
    log = _index_log(symbols, comparisons)
    fits = _fit_every_scale(comparisons, symbols)
    log_evidence = np.array([fit.log_evidence for fit in fits])
    share = np.exp(log_evidence - log_evidence.max())
    share /= share.sum()

    rng = np.random.default_rng([seed, len(comparisons), 1])
    component = rng.choice(len(fits), size=samples, p=share)
    noise = rng.standard_normal((samples, n + 1))
    draws = np.empty((samples, n + 1))
    for j, fit in enumerate(fits):
        rows = component == j
        if rows.any():
            # mean + L^-T z has covariance (L L^T)^-1, the posterior covariance.
            draws[rows] = fit.mean + np.linalg.solve(fit.precision_cholesky.T, noise[rows].T).T

    design = _design(log.first, log.second, n)
    log_target = _log_likelihood(draws @ design.T, log) + _log_prior_density(draws, n)
    log_weight = log_target - _log_gaussian_mixture(draws, fits, share)
    weights = np.exp(log_weight - log_weight.max())
    # Truncate the largest weights (Ionides 2008): far less variance for a negligible bias.
    weights = np.minimum(weights, weights.mean() * math.sqrt(samples))
    weights /= weights.sum()
    strengths, bias = draws[:, :n], draws[:, n]
    for array in (strengths, bias, weights):
        array.flags.writeable = False  # shared through the cache
    return _Posterior(strengths=strengths, bias=bias, weights=weights)


def _fit_every_scale(
    comparisons: tuple[Comparison, ...], symbols: tuple[str, ...]
) -> list[_GaussianFit]:
    """EP fits for each prior scale on the grid, each warm-started from the previous one."""
    n = len(symbols)
    position = {s: i for i, s in enumerate(symbols)}
    first = np.array([position[c.first] for c in comparisons], dtype=np.int64)
    second = np.array([position[c.second] for c in comparisons], dtype=np.int64)
    outcome = np.array([1.0 if c.winner == c.first else -1.0 for c in comparisons])
    rows = _design(first, second, n)
    site_precision = np.zeros(len(comparisons))
    site_shift = np.zeros(len(comparisons))
    fits = []
    for scale in SCALE_GRID:
        fit = _expectation_propagation(
            rows, outcome, _prior_precision(n, scale), site_precision, site_shift
        )
        fits.append(fit)
        site_precision, site_shift = fit.site_precision, fit.site_shift
    return fits


# The logistic curve as a mixture of probit curves, sigmoid(x) ~= sum_k w_k Phi(x / s_k)
# (absolute error < 0.002): it gives EP closed-form moments. Importance weighting then
# corrects to the exact logistic posterior, so this only has to be close.
_PROBIT_SCALES = np.array([1.15452, 2.00271, 3.16334, 4.51099])
_PROBIT_WEIGHTS = np.array([0.391776, 0.554841, 0.052787, 0.000597])
_PROBIT_WEIGHTS = _PROBIT_WEIGHTS / _PROBIT_WEIGHTS.sum()


def _expectation_propagation(
    rows: np.ndarray,
    outcome: np.ndarray,
    prior_precision: np.ndarray,
    site_precision: np.ndarray,
    site_shift: np.ndarray,
    *,
    damping: float = 0.7,
    max_sweeps: int = 40,
    tolerance: float = 1e-3,
) -> _GaussianFit:
    """Parallel EP: one Gaussian site per comparison, on the logit x = rows @ theta.

    It matches the posterior's mean and covariance far better than a Laplace fit at the mode
    when a sharp judge makes the data nearly separable, which keeps importance weights even.
    """
    for _ in range(max_sweeps):
        cavity_mean, cavity_var = _cavities(rows, prior_precision, site_precision, site_shift)
        _, tilted_mean, tilted_var = _tilted_moments(cavity_mean, cavity_var, outcome)
        new_precision = np.maximum(1.0 / tilted_var - 1.0 / cavity_var, 0.0)
        new_shift = tilted_mean / tilted_var - cavity_mean / cavity_var
        change = np.max(np.abs(new_precision - site_precision), initial=0.0)
        site_precision = (1 - damping) * site_precision + damping * new_precision
        site_shift = (1 - damping) * site_shift + damping * new_shift
        if change < tolerance:
            break
    return _ep_fit(rows, outcome, prior_precision, site_precision, site_shift)


def _cavities(
    rows: np.ndarray, prior_precision: np.ndarray, site_precision: np.ndarray, site_shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each comparison's logit under the posterior without its own site."""
    precision = np.diag(prior_precision) + rows.T @ (site_precision[:, None] * rows)
    covariance = np.linalg.inv(precision)
    mean = covariance @ (rows.T @ site_shift)
    marginal_var = np.sum((rows @ covariance) * rows, axis=1)
    marginal_mean = rows @ mean
    cavity_precision = np.maximum(1.0 / marginal_var - site_precision, 1e-9)
    cavity_natural = marginal_mean / marginal_var - site_shift
    return cavity_natural / cavity_precision, 1.0 / cavity_precision


def _tilted_moments(
    cavity_mean: np.ndarray, cavity_var: np.ndarray, outcome: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log normaliser, mean and variance of cavity x sigmoid(outcome * x), per comparison."""
    m, v, y = cavity_mean[:, None], cavity_var[:, None], outcome[:, None]
    spread = _PROBIT_SCALES**2 + v
    root = np.sqrt(spread)
    z = y * m / root
    log_cdf = _log_ndtr(z)
    log_mass = np.log(_PROBIT_WEIGHTS) + log_cdf
    log_normaliser = _logsumexp(log_mass, axis=1)
    share = np.exp(log_mass - log_normaliser[:, None])
    ratio = np.exp(-0.5 * z**2 - 0.5 * math.log(2 * math.pi) - log_cdf)
    mean_k = m + y * v * ratio / root
    var_k = v - v**2 * ratio * (z + ratio) / spread
    mean = np.sum(share * mean_k, axis=1)
    var = np.sum(share * (var_k + (mean_k - mean[:, None]) ** 2), axis=1)
    return log_normaliser, mean, np.maximum(var, 1e-12)


def _ep_fit(
    rows: np.ndarray,
    outcome: np.ndarray,
    prior_precision: np.ndarray,
    site_precision: np.ndarray,
    site_shift: np.ndarray,
) -> _GaussianFit:
    """The Gaussian from the sites, and EP's estimate of the log evidence."""
    precision = np.diag(prior_precision) + rows.T @ (site_precision[:, None] * rows)
    cholesky = np.linalg.cholesky(precision)
    natural = rows.T @ site_shift
    mean = np.linalg.solve(precision, natural)
    cavity_mean, cavity_var = _cavities(rows, prior_precision, site_precision, site_shift)
    log_tilted, _, _ = _tilted_moments(cavity_mean, cavity_var, outcome)
    # log of the integral of cavity x site (a Gaussian integral, see Rasmussen & Williams 3.6)
    t, s, m, v = site_precision, site_shift, cavity_mean, cavity_var
    log_site = -0.5 * np.log1p(t * v) + (2 * m * s + s**2 * v - t * m**2) / (2 * (1 + t * v))
    log_evidence = (
        np.sum(log_tilted - log_site)
        + 0.5 * np.sum(np.log(prior_precision))
        - np.sum(np.log(np.diag(cholesky)))
        + 0.5 * natural @ mean
    )
    return _GaussianFit(mean, cholesky, float(log_evidence), site_precision, site_shift)


def _log_ndtr(z: np.ndarray) -> np.ndarray:
    """log Phi(z), accurate in the far left tail (erfc after Numerical Recipes, rel. err 1e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    log_tail = math.log(0.5) + np.log(t) - x**2 + poly  # log Phi(-|z|)
    return np.where(z < 0, log_tail, np.log1p(-np.exp(log_tail)))


def _log_prior_density(draws: np.ndarray, n: int) -> np.ndarray:
    """log prior density of the draws, with the scale averaged over its grid."""
    strengths_sq = np.sum(draws[:, :n] ** 2, axis=1)
    bias_term = -0.5 * draws[:, n] ** 2 / BIAS_PRIOR_SD**2
    per_scale = np.stack(
        [
            _log_gaussian_normaliser(_prior_precision(n, scale)) - 0.5 * strengths_sq / scale**2
            for scale in SCALE_GRID
        ]
    )
    return _logsumexp(per_scale, axis=0) - math.log(len(SCALE_GRID)) + bias_term


def _log_gaussian_normaliser(precision_diagonal: np.ndarray) -> float:
    return float(
        0.5 * np.sum(np.log(precision_diagonal)) - 0.5 * len(precision_diagonal) * math.log(2 * math.pi)
    )


def _log_gaussian_mixture(draws: np.ndarray, fits: list[_GaussianFit], share: np.ndarray) -> np.ndarray:
    dim = draws.shape[1]
    per_component = []
    for fit, weight in zip(fits, share):
        if weight <= 0.0:
            continue
        chol = fit.precision_cholesky
        whitened = (draws - fit.mean) @ chol  # |L^T (theta - mean)|^2 is the Mahalanobis term
        per_component.append(
            math.log(weight)
            - 0.5 * dim * math.log(2 * math.pi)
            + np.sum(np.log(np.diag(chol)))
            - 0.5 * np.sum(whitened**2, axis=1)
        )
    return _logsumexp(np.stack(per_component), axis=0)


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    top = values.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(values - top), axis=axis))


# --- the answer -------------------------------------------------------------------------------


def _top_k_membership(strengths: np.ndarray, k: int) -> np.ndarray:
    """draws x symbols matrix: 1.0 where the symbol is among that draw's K strongest."""
    membership = np.zeros(strengths.shape)
    top = np.argpartition(-strengths, k - 1, axis=1)[:, :k]
    np.put_along_axis(membership, top, 1.0, axis=1)
    return membership


def _best_set(p_in_top: np.ndarray, posterior: _Posterior, k: int) -> np.ndarray:
    """Indices of the K symbols most likely in the top K, best first by mean strength."""
    mean_strength = posterior.weights @ posterior.strengths
    by_probability = np.lexsort((-mean_strength, -p_in_top))[:k]
    return by_probability[np.argsort(-mean_strength[by_probability], kind="stable")]


# --- choosing the next batch ------------------------------------------------------------------


def _all_pairs_randomly_oriented(n: int, rng: np.random.Generator) -> np.ndarray:
    first, second = np.triu_indices(n, 1)
    swap = rng.random(len(first)) < 0.5
    return np.stack([np.where(swap, second, first), np.where(swap, first, second)], axis=1)


def _lookahead_gain(posterior: _Posterior, pairs: np.ndarray, k: int) -> np.ndarray:
    """Expected gain in expected precision@K from judging each pair once (knowledge gradient)."""
    weights, strengths = posterior.weights, posterior.strengths
    in_top = _top_k_membership(strengths, k)
    now = weights @ in_top
    logits = strengths[:, pairs[:, 0]] - strengths[:, pairs[:, 1]] + posterior.bias[:, None]
    p_first = 1.0 / (1.0 + np.exp(-logits))  # draws x pairs
    weighted = p_first * weights[:, None]
    prob_first_wins = np.clip(weighted.sum(axis=0), 1e-12, 1 - 1e-12)
    mass_if_first = weighted.T @ in_top  # pairs x symbols, unnormalised
    mass_if_second = now[None, :] - mass_if_first
    value_if_first = _top_k_sum(mass_if_first, k)  # = P(first wins) * E[precision | first wins] * K
    value_if_second = _top_k_sum(mass_if_second, k)
    return (value_if_first + value_if_second - _top_k_sum(now[None, :], k)) / k
    # (normalisation by the outcome probability cancels: gain = sum over outcomes of
    #  P(outcome) * best expected precision given the outcome, minus the best now)


def _top_k_sum(rows: np.ndarray, k: int) -> np.ndarray:
    return np.partition(rows, rows.shape[1] - k, axis=1)[:, -k:].sum(axis=1)


def _pick_batch(
    pairs: np.ndarray, gain: np.ndarray, seen: np.ndarray, batch: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Symbols never compared first (a random matching), then the pairs with the largest gain."""
    uses = np.zeros(len(seen), dtype=int)
    taken: set[tuple[int, int]] = set()
    chosen: list[tuple[int, int]] = []

    def take(first: int, second: int) -> None:
        chosen.append((first, second))
        taken.add((min(first, second), max(first, second)))
        uses[first] += 1
        uses[second] += 1

    never_seen = rng.permutation(np.flatnonzero(seen == 0))
    for first, second in zip(never_seen[0::2], never_seen[1::2]):
        if len(chosen) < batch:
            take(int(first), int(second))
    tie_break = rng.random(len(pairs))
    for row in np.lexsort((tie_break, -gain)):
        if len(chosen) >= batch:
            break
        first, second = int(pairs[row, 0]), int(pairs[row, 1])
        if (min(first, second), max(first, second)) in taken:
            continue
        if max(uses[first], uses[second]) >= MAX_PAIRS_PER_SYMBOL:
            continue
        take(first, second)
    return chosen
