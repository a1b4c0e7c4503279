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

Over 400 lines: the posterior, the estimate read from it and the choice of pairs that reads the
same posterior are one piece of statistics, tested together (tests/test_bradley_terry.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from analysis.ranking.top_k_posterior import SCALE_GRID, best_set, log_scale_prior, top_k_membership

DEFAULT_SAMPLES = 2000  # posterior draws per round (see _posterior)
MAX_DRAW_ROUNDS = 5
BIAS_PRIOR_SD = 1.0
# Draws used to score candidate pairs: choosing needs less precision than reporting.
DESIGN_DRAWS = 1000
# Within one batch a symbol takes part in at most this many pairs (more when N is small).
MAX_PAIRS_PER_SYMBOL = 2
# Scales whose evidence is this far (in nats) below the best carry no weight; their fit is skipped.
NEGLIGIBLE_LOG_EVIDENCE = 25.0


@dataclass(frozen=True)
class Comparison:
    """One judged pair: the judge saw `first` then `second` and preferred `winner`."""

    first: str
    second: str
    winner: str
    model: str = ""


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


def stop_reason(
    estimate: TopKEstimate, comparisons_made: int, *, target: float, budget: int
) -> str | None:
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


# --- validation and the log -------------------------------------------------------------------


@dataclass(frozen=True)
class _Log:
    """The comparison log as index arrays, aggregated per ordered (first, second) pair."""

    first: np.ndarray
    second: np.ndarray
    trials: np.ndarray
    first_wins: np.ndarray


def _check_inputs(symbols: list[str], k: int, samples: int) -> None:
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols must be distinct")
    if not 1 <= k <= len(symbols):
        raise ValueError(f"k must be between 1 and {len(symbols)} (the number of symbols), got {k}")
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")


def _index_log(symbols: list[str] | tuple[str, ...], comparisons) -> _Log:
    """Validate the log against the symbols and aggregate it."""
    position = {s: i for i, s in enumerate(symbols)}
    n = len(symbols)
    codes = np.empty(len(comparisons), dtype=np.int64)
    first_won = np.empty(len(comparisons))
    for row, c in enumerate(comparisons):
        for name in (c.first, c.second):
            if name not in position:
                raise ValueError(f"comparison {c} names {name!r}, which is not among the symbols")
        if c.first == c.second:
            raise ValueError(f"comparison {c} pairs {c.first!r} with itself")
        if c.winner not in (c.first, c.second):
            raise ValueError(f"comparison {c} has winner {c.winner!r}, which is not in the pair")
        codes[row] = position[c.first] * n + position[c.second]
        first_won[row] = c.winner == c.first
    unique, inverse = np.unique(codes, return_inverse=True)
    return _Log(
        first=unique // n,
        second=unique % n,
        trials=np.bincount(inverse, minlength=len(unique)).astype(float),
        first_wins=np.bincount(inverse, weights=first_won, minlength=len(unique)),
    )


def _comparison_counts(log: _Log, n: int) -> np.ndarray:
    """How many comparisons each symbol has taken part in."""
    return np.bincount(log.first, log.trials, n) + np.bincount(log.second, log.trials, n)


def _design(first: np.ndarray, second: np.ndarray, n: int) -> np.ndarray:
    """Rows map the parameters (strengths..., bias) to the logit that `first` wins."""
    rows = np.zeros((len(first), n + 1))
    rows[np.arange(len(first)), first] = 1.0
    rows[np.arange(len(first)), second] = -1.0
    rows[:, n] = 1.0
    return rows


# --- the posterior ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Posterior:
    """Weighted draws: strengths (draws x symbols), bias (draws,), weights summing to 1."""

    strengths: np.ndarray
    bias: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class _GaussianFit:
    """EP's Gaussian approximation of the posterior at one prior scale."""

    mean: np.ndarray
    precision_cholesky: np.ndarray  # L with L @ L.T = posterior precision
    log_evidence: float
    site_precision: np.ndarray  # EP sites, kept to warm-start the next scale
    site_shift: np.ndarray


@lru_cache(maxsize=8)
def _posterior(
    symbols: tuple[str, ...], comparisons: tuple[Comparison, ...], seed: int, samples: int
) -> _Posterior:
    """Importance-weighted draws from the posterior over strengths, bias and scale.

    `samples` draws at first; while the effective sample size is below half of that, another
    `samples` are added (at most MAX_DRAW_ROUNDS rounds). Sampling noise matters: the run stops
    the first time the confidence crosses the target, so noise would bias the stopping point.
    """
    n = len(symbols)
    log = _index_log(symbols, comparisons)
    design = _design(log.first, log.second, n)
    fits = _fit_scales(symbols, comparisons)
    log_evidence = (np.array([fit.log_evidence for fit in fits])
                    + log_scale_prior(SCALE_GRID)[: len(fits)])
    share = np.exp(log_evidence - log_evidence.max())
    share[share < 1e-12] = 0.0
    share /= share.sum()

    rng = np.random.default_rng([seed, len(comparisons), 1])
    rounds: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(MAX_DRAW_ROUNDS):
        draws = _draw_from_mixture(fits, share, samples, rng)
        log_target = _log_likelihood(draws @ design.T, log) + _log_prior(draws, n)
        rounds.append((draws, log_target - _log_mixture_density(draws, fits, share)))
        weights = _normalised_weights(np.concatenate([w for _, w in rounds]))
        if 1.0 / np.sum(weights**2) >= samples / 2:
            break
    draws = np.concatenate([d for d, _ in rounds])
    strengths, bias = draws[:, :n], draws[:, n]
    for array in (strengths, bias, weights):
        array.flags.writeable = False  # shared through the cache
    return _Posterior(strengths, bias, weights)


def _draw_from_mixture(
    fits: list[_GaussianFit], share: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    component = rng.choice(len(fits), size=size, p=share)
    noise = rng.standard_normal((size, len(fits[0].mean)))
    draws = np.empty_like(noise)
    for j, fit in enumerate(fits):
        rows = component == j
        if rows.any():
            # mean + L^-T z has covariance (L L^T)^-1, the fit's covariance.
            draws[rows] = fit.mean + np.linalg.solve(fit.precision_cholesky.T, noise[rows].T).T
    return draws


def _normalised_weights(log_weight: np.ndarray) -> np.ndarray:
    """Self-normalised importance weights. Not truncated: capping the largest weights would pull
    the tails toward the Gaussian's, and the tails decide `p_exact`."""
    weights = np.exp(log_weight - log_weight.max())
    return weights / weights.sum()


def _log_likelihood(logits: np.ndarray, log: _Log) -> np.ndarray:
    """Log-likelihood of the log for logits of shape (draws, ordered pairs)."""
    log_p_first = np.minimum(logits, 0.0) - np.log1p(np.exp(-np.abs(logits)))  # log sigmoid
    # log sigmoid(-x) = log sigmoid(x) - x
    return log.trials @ log_p_first.T - (log.trials - log.first_wins) @ logits.T


def _prior_precision(n: int, scale: float) -> np.ndarray:
    return np.append(np.full(n, scale**-2), BIAS_PRIOR_SD**-2)


def _log_prior(draws: np.ndarray, n: int) -> np.ndarray:
    """log prior density of (strengths, bias) draws, the scale averaged over its grid."""
    squares = np.sum(draws[:, :n] ** 2, axis=1)
    per_scale = np.stack(
        [
            log_weight + _log_normaliser(_prior_precision(n, scale)) - 0.5 * squares / scale**2
            for scale, log_weight in zip(SCALE_GRID, log_scale_prior(SCALE_GRID))
        ]
    )
    bias_term = -0.5 * draws[:, n] ** 2 / BIAS_PRIOR_SD**2
    return _logsumexp(per_scale, axis=0) + bias_term


def _log_normaliser(precision_diagonal: np.ndarray) -> float:
    """log of a zero-mean Gaussian's normalising constant, from its diagonal precision."""
    dim = len(precision_diagonal)
    return float(0.5 * np.sum(np.log(precision_diagonal)) - 0.5 * dim * math.log(2 * math.pi))


def _log_mixture_density(
    draws: np.ndarray, fits: list[_GaussianFit], share: np.ndarray
) -> np.ndarray:
    dim = draws.shape[1]
    per_component = []
    for fit, weight in zip(fits, share):
        if weight > 0.0:
            whitened = (draws - fit.mean) @ fit.precision_cholesky
            log_det_half = np.sum(np.log(np.diag(fit.precision_cholesky)))
            per_component.append(
                math.log(weight) - 0.5 * dim * math.log(2 * math.pi) + log_det_half
                - 0.5 * np.sum(whitened**2, axis=1)
            )
    return _logsumexp(np.stack(per_component), axis=0)


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    top = values.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(values - top), axis=axis))


# --- expectation propagation ------------------------------------------------------------------

# sigmoid(x) ~= sum_k w_k Phi(x / s_k), a mixture of probit curves (absolute error < 0.002), so
# that EP's moments have closed forms. Importance weighting corrects to the exact logistic
# posterior afterwards, so this only has to be close.
_PROBIT_SCALES = np.array([1.15452, 2.00271, 3.16334, 4.51099])
_PROBIT_WEIGHTS = np.array([0.391776, 0.554841, 0.052787, 0.000597])
_PROBIT_WEIGHTS = _PROBIT_WEIGHTS / _PROBIT_WEIGHTS.sum()


def _fit_scales(
    symbols: tuple[str, ...], comparisons: tuple[Comparison, ...]
) -> list[_GaussianFit]:
    """One EP fit per scale, smallest first, each warm-started from the previous one.

    Once the evidence has fallen far below its best, the larger scales are left out (they
    would get a weight below e^-25).
    """
    n = len(symbols)
    position = {s: i for i, s in enumerate(symbols)}
    first = np.array([position[c.first] for c in comparisons], dtype=np.int64)
    second = np.array([position[c.second] for c in comparisons], dtype=np.int64)
    outcome = np.array([1.0 if c.winner == c.first else -1.0 for c in comparisons])
    rows = _design(first, second, n)
    site_precision, site_shift = np.zeros(len(comparisons)), np.zeros(len(comparisons))
    fits: list[_GaussianFit] = []
    for scale in SCALE_GRID:
        prior_precision = _prior_precision(n, scale)
        fit = _expectation_propagation(rows, outcome, prior_precision, site_precision, site_shift)
        fits.append(fit)
        best = max(f.log_evidence for f in fits)
        if fit.log_evidence < best - NEGLIGIBLE_LOG_EVIDENCE:
            break
        site_precision, site_shift = fit.site_precision, fit.site_shift
    return fits


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
    """Parallel EP with one Gaussian site per comparison on its logit x = rows @ theta.

    Unlike a Laplace fit at the mode, EP matches the posterior's mean and spread even when a
    sharp judge makes the data nearly separable, which keeps the importance weights even.
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
    return _ep_result(rows, outcome, prior_precision, site_precision, site_shift)


def _cavities(
    rows: np.ndarray,
    prior_precision: np.ndarray,
    site_precision: np.ndarray,
    site_shift: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each comparison's logit under the fit without that comparison."""
    precision = np.diag(prior_precision) + rows.T @ (site_precision[:, None] * rows)
    covariance = np.linalg.inv(precision)
    marginal_var = np.sum((rows @ covariance) * rows, axis=1)
    marginal_mean = rows @ (covariance @ (rows.T @ site_shift))
    cavity_precision = np.maximum(1.0 / marginal_var - site_precision, 1e-9)
    cavity_shift = marginal_mean / marginal_var - site_shift
    return cavity_shift / cavity_precision, 1.0 / cavity_precision


def _tilted_moments(
    cavity_mean: np.ndarray, cavity_var: np.ndarray, outcome: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log normaliser, mean and variance of N(x; cavity) * sigmoid(outcome * x), per comparison."""
    m, v, y = cavity_mean[:, None], cavity_var[:, None], outcome[:, None]
    spread = _PROBIT_SCALES**2 + v
    root = np.sqrt(spread)
    z = y * m / root
    log_cdf = _log_ndtr(z)
    log_mass = np.log(_PROBIT_WEIGHTS) + log_cdf
    log_normaliser = _logsumexp(log_mass, axis=1)
    responsibility = np.exp(log_mass - log_normaliser[:, None])
    hazard = np.exp(-0.5 * z**2 - 0.5 * math.log(2 * math.pi) - log_cdf)  # pdf(z) / cdf(z)
    mean_k = m + y * v * hazard / root
    var_k = v - v**2 * hazard * (z + hazard) / spread
    mean = np.sum(responsibility * mean_k, axis=1)
    var = np.sum(responsibility * (var_k + (mean_k - mean[:, None]) ** 2), axis=1)
    return log_normaliser, mean, np.maximum(var, 1e-12)


def _ep_result(
    rows: np.ndarray,
    outcome: np.ndarray,
    prior_precision: np.ndarray,
    site_precision: np.ndarray,
    site_shift: np.ndarray,
) -> _GaussianFit:
    """The Gaussian the sites define, and EP's estimate of the log evidence."""
    precision = np.diag(prior_precision) + rows.T @ (site_precision[:, None] * rows)
    cholesky = np.linalg.cholesky(precision)
    shift = rows.T @ site_shift
    mean = np.linalg.solve(precision, shift)
    cavity_mean, cavity_var = _cavities(rows, prior_precision, site_precision, site_shift)
    log_tilted, _, _ = _tilted_moments(cavity_mean, cavity_var, outcome)
    # log of the integral of N(x; cavity) * exp(-t x^2 / 2 + s x): the site's share of the
    # Gaussian's normaliser, to be replaced by the true (tilted) normaliser.
    t, s, m, v = site_precision, site_shift, cavity_mean, cavity_var
    log_site = -0.5 * np.log1p(t * v) + (2 * m * s + s**2 * v - t * m**2) / (2 * (1 + t * v))
    log_evidence = (
        np.sum(log_tilted - log_site)
        + 0.5 * np.sum(np.log(prior_precision))
        - np.sum(np.log(np.diag(cholesky)))
        + 0.5 * shift @ mean
    )
    return _GaussianFit(mean, cholesky, float(log_evidence), site_precision, site_shift)


def _log_ndtr(z: np.ndarray) -> np.ndarray:
    """log Phi(z), accurate far into the left tail (erfc as in Numerical Recipes, rel. err 1e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    coefficients = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807,
                    -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223)
    poly = np.zeros_like(t)
    for c in coefficients:
        poly = poly * t + c
    log_lower_tail = math.log(0.5) + np.log(t) - x**2 + poly  # log Phi(-|z|)
    return np.where(z < 0, log_lower_tail, np.log1p(-np.exp(log_lower_tail)))


# --- the answer -------------------------------------------------------------------------------


# --- choosing the next batch ------------------------------------------------------------------


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


def _lookahead_gain(
    strengths: np.ndarray, bias: np.ndarray, pairs: np.ndarray, k: int
) -> np.ndarray:
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
