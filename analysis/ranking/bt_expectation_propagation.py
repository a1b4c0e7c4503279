"""Expectation propagation for the Bradley-Terry model: a Gaussian fit per prior scale.

The fit gives a Gaussian matching the posterior's mean and covariance at one scale of the
strengths' prior, and its evidence; bt_posterior.py mixes them and corrects by importance weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.ranking.bt_log import Comparison, _design
from analysis.ranking.top_k_posterior import SCALE_GRID

BIAS_PRIOR_SD = 1.0
# Scales whose evidence is this far (in nats) below the best carry no weight; their fit is skipped.
NEGLIGIBLE_LOG_EVIDENCE = 25.0


@dataclass(frozen=True)
class _GaussianFit:
    """EP's Gaussian approximation of the posterior at one prior scale."""

    mean: np.ndarray
    precision_cholesky: np.ndarray  # L with L @ L.T = posterior precision
    log_evidence: float
    site_precision: np.ndarray  # EP sites, kept to warm-start the next scale
    site_shift: np.ndarray


def _prior_precision(n: int, scale: float) -> np.ndarray:
    return np.append(np.full(n, scale**-2), BIAS_PRIOR_SD**-2)


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    top = values.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(values - top), axis=axis))


# that EP's moments have closed forms. Importance weighting corrects to the exact logistic
# posterior afterwards, so this only has to be close.
_PROBIT_SCALES = np.array([1.15452, 2.00271, 3.16334, 4.51099])
_PROBIT_WEIGHTS = np.array([0.391776, 0.554841, 0.052787, 0.000597])
_PROBIT_WEIGHTS = _PROBIT_WEIGHTS / _PROBIT_WEIGHTS.sum()


def _fit_scales(symbols: tuple[str, ...], comparisons: tuple[Comparison, ...]) -> list[_GaussianFit]:
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
    coefficients = (
        0.17087277,
        -0.82215223,
        1.48851587,
        -1.13520398,
        0.27886807,
        -0.18628806,
        0.09678418,
        0.37409196,
        1.00002368,
        -1.26551223,
    )
    poly = np.zeros_like(t)
    for c in coefficients:
        poly = poly * t + c
    log_lower_tail = math.log(0.5) + np.log(t) - x**2 + poly  # log Phi(-|z|)
    return np.where(z < 0, log_lower_tail, np.log1p(-np.exp(log_lower_tail)))
