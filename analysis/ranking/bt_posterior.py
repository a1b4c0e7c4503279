"""The Bradley-Terry posterior as importance-weighted draws (see bradley_terry.py's docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from analysis.ranking.bt_expectation_propagation import (
    BIAS_PRIOR_SD,
    _fit_scales,
    _GaussianFit,
    _logsumexp,
    _prior_precision,
)
from analysis.ranking.bt_log import Comparison, _design, _index_log, _Log
from analysis.ranking.top_k_posterior import SCALE_GRID, log_scale_prior

DEFAULT_SAMPLES = 2000  # posterior draws per round (see _posterior)
MAX_DRAW_ROUNDS = 5


@dataclass(frozen=True)
class _Posterior:
    """Weighted draws: strengths (draws x symbols), bias (draws,), weights summing to 1."""

    strengths: np.ndarray
    bias: np.ndarray
    weights: np.ndarray


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
    log_evidence = np.array([fit.log_evidence for fit in fits]) + log_scale_prior(SCALE_GRID)[: len(fits)]
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


def _log_mixture_density(draws: np.ndarray, fits: list[_GaussianFit], share: np.ndarray) -> np.ndarray:
    dim = draws.shape[1]
    per_component = []
    for fit, weight in zip(fits, share):
        if weight > 0.0:
            whitened = (draws - fit.mean) @ fit.precision_cholesky
            log_det_half = np.sum(np.log(np.diag(fit.precision_cholesky)))
            per_component.append(
                math.log(weight)
                - 0.5 * dim * math.log(2 * math.pi)
                + log_det_half
                - 0.5 * np.sum(whitened**2, axis=1)
            )
    return _logsumexp(np.stack(per_component), axis=0)
