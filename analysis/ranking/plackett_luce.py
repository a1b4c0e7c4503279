"""Top-K selection from listwise LLM answers: the Plackett–Luce statistics of the `llm` strategy.

The model
    A call shows the judge m markets in a display order and gets back their full order, best
    first (an `Order`). The judge is modelled as choosing the best of the markets left, again
    and again (Plackett–Luce): a market shown at display position p has utility
        u = s[market] + bias[p]
    and is chosen from the markets left with probability exp(u) / sum(exp(u) over those left).
    A pair is the m = 2 case: P(first wins) = sigmoid(s[first] - s[second] + bias[0] - bias[1]),
    the Bradley–Terry model of analysis/bradley_terry.py. Priors: s ~ N(0, scale^2), the scale
    (the judge's sharpness) on the same half-Cauchy grid as the pairwise model, and every
    display position's bias ~ N(0, 1), so the biases are learned from the log (the display
    order is shuffled on every call, which is what makes them learnable).

The fit (pure numpy, deterministic)
    For each scale on the grid a Laplace approximation (Newton's method to the mode; the
    log-likelihood is concave) gives a Gaussian and its evidence. Draws from the evidence-
    weighted mixture of those Gaussians are importance-weighted by the exact posterior. A sharp
    judge makes the posterior skewed (the market always picked first is bounded on one side
    only), which the Laplace fit misses, so while the effective sample size (ESS) is below half
    the draws another round is drawn from a Gaussian with the weighted draws' mean and
    covariance (adaptive importance sampling, at most MAX_DRAW_ROUNDS rounds; every draw is
    weighted against the equal mixture of the rounds' proposals). The ESS is reported with the estimate and
    `stop_reason` will not stop on a posterior of fewer than MIN_EFFECTIVE_DRAWS effective draws:
    with too few effective draws the confidence jitters, and a run that stops the first time it
    crosses the target stops on that noise.

What the confidence means
    As in the pairwise model: `expected_precision` is the posterior expectation of precision@K
    of the reported set (the K markets with the highest probability of being in the top K);
    `p_exact` the posterior probability that the reported set is exactly the true top-K set.

Choosing the next sets (`choose_sets`)
    First every market once (a random partition into sets of m, the last one filled up with
    others). Then sets around the K-th place: markets are drawn without replacement with weight
    p(1-p) + FLOOR_WEIGHT, p being the market's probability of being in the top K (so the
    markets whose membership is undecided), each market's weight divided by 1 + the number of
    sets of this round it is already in. Each set's display order is shuffled. A set is never
    shown twice in the same display order (at temperature 0 a model would repeat itself, and
    the model counts each answer as new evidence). Every draw comes from a generator seeded by
    the caller's seed and the log's length, so the same log gives the same next sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from analysis.ranking.bradley_terry import (SCALE_GRID, Comparison, _best_set, _log_scale_prior,
                                     _logsumexp, _top_k_membership)

DEFAULT_SAMPLES = 2000
MAX_DRAW_ROUNDS = 5
MIN_EFFECTIVE_DRAWS = 400
BIAS_PRIOR_SD = 1.0
NEGLIGIBLE_LOG_EVIDENCE = 25.0
FLOOR_WEIGHT = 0.01
BUDGET_PAIRS_PER_MARKET = 10  # the pairwise budget (10 comparisons per market), in pair-equivalents


@dataclass(frozen=True)
class Order:
    """One listwise answer: the judge saw `shown` in that order and ranked them `ranking`, best
    first. A pair is an Order of two."""

    shown: tuple[str, ...]
    ranking: tuple[str, ...]
    model: str = ""

    @classmethod
    def from_comparison(cls, comparison: Comparison) -> Order:
        loser = comparison.second if comparison.winner == comparison.first else comparison.first
        return cls((comparison.first, comparison.second), (comparison.winner, loser), comparison.model)


@dataclass(frozen=True)
class ListEstimate:
    """The current answer and how sure it is (see the module docstring)."""

    top_k: list[str]
    p_in_top_k: dict[str, float]
    expected_precision: float
    p_exact: float
    strengths: dict[str, float]  # posterior mean, centred on 0
    position_bias: list[float]  # posterior mean per display position, relative to the last
    effective_draws: float

    @property
    def first_bias(self) -> float:
        """The first position's advantage over the last, in logits (a pair's first_bias)."""
        return self.position_bias[0] if self.position_bias else 0.0


def default_budget(n_markets: int, list_size: int) -> int:
    """Maximum calls for one analysis: the pairwise budget of 10 comparisons per market, counted
    in pair-equivalents (an order of m carries m-1 choices): 34 calls for 30 markets in tens."""
    return math.ceil(BUDGET_PAIRS_PER_MARKET * n_markets / (list_size - 1))


def calls_per_round(n_markets: int, list_size: int, batch_cap: int) -> int:
    """Calls sent together in one step: enough to show every market once, at most `batch_cap`."""
    return max(1, min(batch_cap, math.ceil(n_markets / list_size)))


def stop_reason(estimate: ListEstimate, calls: int, *, target: float, budget: int) -> str | None:
    """"target reached", "target not reached" (budget spent) or None (go on). A posterior with
    too few effective draws never counts as reaching the target."""
    if estimate.expected_precision >= target and estimate.effective_draws >= MIN_EFFECTIVE_DRAWS:
        return "target reached"
    if calls >= budget:
        return "target not reached"
    return None


def estimate_top_k(
    symbols: Sequence[str], orders: Iterable[Order], k: int, *, seed: int,
    samples: int = DEFAULT_SAMPLES,
) -> ListEstimate:
    """Fit the model to the whole log; report the top K and its confidence.

    Raises ValueError for k outside 1..len(symbols), repeated symbols, or an order whose shown
    markets are unknown or repeated, or whose ranking is not exactly the shown markets.
    """
    symbols, orders = tuple(symbols), tuple(orders)
    _check(symbols, orders, k)
    posterior = _posterior(symbols, orders, seed, samples)
    n = len(symbols)
    strengths = posterior.draws[:, :n]
    in_top = _top_k_membership(strengths, k)
    p_in_top = posterior.weights @ in_top
    mean_strength = posterior.weights @ strengths
    chosen = _best_set(p_in_top, mean_strength, k)
    exact = np.all(in_top[:, chosen] > 0, axis=1)
    bias = posterior.weights @ posterior.draws[:, n:]
    return ListEstimate(
        top_k=[symbols[i] for i in chosen],
        p_in_top_k={s: float(p) for s, p in zip(symbols, p_in_top)},
        expected_precision=float(p_in_top[chosen].mean()),
        p_exact=float(posterior.weights @ exact),
        strengths={s: float(v) for s, v in zip(symbols, mean_strength - mean_strength.mean())},
        position_bias=[float(b - bias[-1]) for b in bias],
        effective_draws=float(1.0 / np.sum(posterior.weights**2)),
    )


def choose_sets(
    symbols: Sequence[str], orders: Sequence[Order], k: int, list_size: int, calls: int, *,
    seed: int, estimate: ListEstimate | None = None,
) -> list[tuple[str, ...]]:
    """`calls` display orders of `list_size` markets to show next (see the module docstring)."""
    symbols, orders = tuple(symbols), tuple(orders)
    _check(symbols, orders, k)
    n = len(symbols)
    m = min(list_size, n)
    if calls <= 0 or m < 2:
        return []
    rng = np.random.default_rng([seed, len(orders), 2])
    seen = {o.shown for o in orders}
    shown_count = np.zeros(n)
    index = {s: i for i, s in enumerate(symbols)}
    for o in orders:
        for s in o.shown:
            shown_count[index[s]] += 1
    if estimate is None:
        estimate = estimate_top_k(symbols, orders, k, seed=seed)
    p = np.array([estimate.p_in_top_k[s] for s in symbols])
    weight = p * (1 - p) + FLOOR_WEIGHT
    uses = np.zeros(n)
    chosen: list[tuple[str, ...]] = []
    newcomers = list(rng.permutation(np.flatnonzero(shown_count == 0)))
    for _ in range(calls):
        members: list[int] = []
        while newcomers and len(members) < m:  # every market once first
            members.append(int(newcomers.pop()))
        if members and len(members) < m:
            others = np.setdiff1d(np.arange(n), members)
            fill = _weighted_sample(weight[others] / (1 + uses[others]), m - len(members), rng)
            members += [int(others[i]) for i in fill]
        if not members:
            members = [int(i) for i in _weighted_sample(weight / (1 + uses), m, rng)]
        shown = _fresh_display_order(members, symbols, seen, rng)
        if shown is None:
            continue
        seen.add(shown)
        chosen.append(shown)
        uses[members] += 1
    return chosen


# --- helpers ----------------------------------------------------------------------------------


def _check(symbols: tuple[str, ...], orders: tuple[Order, ...], k: int) -> None:
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols must be distinct")
    if not 1 <= k <= len(symbols):
        raise ValueError(f"k must be between 1 and {len(symbols)} (the number of symbols), got {k}")
    known = set(symbols)
    for o in orders:
        if len(o.shown) < 2 or len(set(o.shown)) != len(o.shown):
            raise ValueError(f"order {o} must show at least two distinct markets")
        if not set(o.shown) <= known:
            raise ValueError(f"order {o} names a market that is not among the symbols")
        if len(o.ranking) != len(o.shown) or set(o.ranking) != set(o.shown):
            raise ValueError(f"order {o} must rank exactly the markets it shows")


def _weighted_sample(weight: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` distinct indices drawn with probability proportional to `weight` (Gumbel top-k)."""
    keys = np.log(np.maximum(weight, 1e-12)) - np.log(-np.log(rng.random(len(weight))))
    return np.argsort(-keys, kind="stable")[:size]


def _fresh_display_order(members: list[int], symbols: tuple[str, ...], seen: set,
                         rng: np.random.Generator, tries: int = 50) -> tuple[str, ...] | None:
    for _ in range(tries):
        shown = tuple(symbols[i] for i in rng.permutation(members))
        if shown not in seen:
            return shown
    return None


# --- the posterior ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Posterior:
    draws: np.ndarray  # draws x (strengths..., biases...)
    weights: np.ndarray


@dataclass(frozen=True)
class _Data:
    """Orders grouped by size: per size, (orders x m) parameter indices of the strength and
    the display-position bias of each ranked market, best first."""

    groups: tuple[tuple[np.ndarray, np.ndarray], ...]
    n: int
    positions: int

    @property
    def dim(self) -> int:
        return self.n + self.positions


def _data(symbols: tuple[str, ...], orders: tuple[Order, ...]) -> _Data:
    index = {s: i for i, s in enumerate(symbols)}
    n = len(symbols)
    positions = max([len(o.shown) for o in orders], default=2)
    by_size: dict[int, list[tuple[list[int], list[int]]]] = {}
    for o in orders:
        place = {s: p for p, s in enumerate(o.shown)}
        by_size.setdefault(len(o.shown), []).append(
            ([index[s] for s in o.ranking], [n + place[s] for s in o.ranking]))
    groups = tuple((np.array([a for a, _ in rows]), np.array([b for _, b in rows]))
                   for _, rows in sorted(by_size.items()))
    return _Data(groups, n, positions)


def _log_likelihood(theta: np.ndarray, data: _Data) -> np.ndarray:
    """Plackett–Luce log-likelihood of the log for parameter draws theta (draws x dim)."""
    total = np.zeros(theta.shape[0])
    for items, biases in data.groups:
        u = theta[:, items] + theta[:, biases]  # draws x orders x m, best first
        tail = np.logaddexp.accumulate(u[:, :, ::-1], axis=2)[:, :, ::-1]
        total += np.sum(u[:, :, :-1] - tail[:, :, :-1], axis=(1, 2))
    return total


def _prior_precision(data: _Data, scale: float) -> np.ndarray:
    return np.concatenate([np.full(data.n, scale**-2), np.full(data.positions, BIAS_PRIOR_SD**-2)])


def _log_prior(theta: np.ndarray, data: _Data) -> np.ndarray:
    """log prior density, the scale averaged over its grid."""
    n = data.n
    squares = np.sum(theta[:, :n] ** 2, axis=1)
    per_scale = np.stack([
        w - n * math.log(scale) - 0.5 * squares / scale**2
        for scale, w in zip(SCALE_GRID, _log_scale_prior())
    ])
    bias = -0.5 * np.sum(theta[:, n:] ** 2, axis=1) / BIAS_PRIOR_SD**2
    return _logsumexp(per_scale, axis=0) + bias - 0.5 * data.dim * math.log(2 * math.pi) \
        - data.positions * math.log(BIAS_PRIOR_SD)


def _gradient_hessian(theta: np.ndarray, data: _Data) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood, its gradient and its (negative definite) Hessian at one theta."""
    dim = data.dim
    value, grad, hess = 0.0, np.zeros(dim), np.zeros((dim, dim))
    for items, biases in data.groups:
        orders, m = items.shape
        u = theta[items] + theta[biases]  # orders x m
        stage_mask = np.triu(np.ones((m, m), dtype=bool))[:-1]  # stage j chooses among j..m-1
        logits = np.where(stage_mask[None], u[:, None, :], -np.inf)  # orders x stages x m
        log_norm = _logsumexp(logits, axis=2)
        value += float(np.sum(u[:, :-1] - log_norm))
        prob = np.exp(logits - log_norm[:, :, None])  # orders x stages x m
        a = np.zeros((orders, m, dim))  # each ranked market's parameter indicator
        rows = np.arange(orders)[:, None]
        a[rows, np.arange(m)[None, :], items] += 1.0
        a[rows, np.arange(m)[None, :], biases] += 1.0
        expected = np.einsum("osm,omd->osd", prob, a)  # orders x stages x dim
        grad += np.sum(a[:, :-1], axis=(0, 1)) - np.sum(expected, axis=(0, 1))
        occupancy = np.sum(prob, axis=1)  # orders x m
        hess -= np.einsum("om,omd,ome->de", occupancy, a, a)
        hess += np.einsum("osd,ose->de", expected, expected)
    return value, grad, hess


@dataclass(frozen=True)
class _Laplace:
    mean: np.ndarray
    cholesky: np.ndarray  # of the posterior precision
    log_evidence: float


def _laplace(data: _Data, scale: float, start: np.ndarray) -> _Laplace:
    prior = _prior_precision(data, scale)
    theta = start.copy()

    def objective(t: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        value, grad, hess = _gradient_hessian(t, data)
        return (value - 0.5 * np.sum(prior * t**2), grad - prior * t, hess - np.diag(prior))

    value, grad, hess = objective(theta)
    for _ in range(50):
        step = np.linalg.solve(-hess, grad)
        size = 1.0
        while True:
            candidate = theta + size * step
            new = objective(candidate)
            if new[0] >= value - 1e-12 or size < 1e-4:
                break
            size /= 2
        theta, (new_value, grad, hess) = candidate, new
        done = new_value - value < 1e-9
        value = new_value
        if done:
            break
    precision = -hess
    cholesky = np.linalg.cholesky(precision)
    log_evidence = (value + 0.5 * np.sum(np.log(prior)) - np.sum(np.log(np.diag(cholesky))))
    return _Laplace(theta, cholesky, float(log_evidence))


@lru_cache(maxsize=8)
def _posterior(symbols: tuple[str, ...], orders: tuple[Order, ...], seed: int,
               samples: int) -> _Posterior:
    data = _data(symbols, orders)
    fits: list[_Laplace] = []
    start = np.zeros(data.dim)
    for scale in SCALE_GRID:
        fit = _laplace(data, scale, start)
        fits.append(fit)
        start = fit.mean
        if fit.log_evidence < max(f.log_evidence for f in fits) - NEGLIGIBLE_LOG_EVIDENCE:
            break
    log_evidence = np.array([f.log_evidence for f in fits]) + _log_scale_prior()[: len(fits)]
    share = np.exp(log_evidence - log_evidence.max())
    share[share < 1e-12] = 0.0
    share /= share.sum()
    laplace = [(f.mean, f.cholesky, w) for f, w in zip(fits, share) if w > 0]

    # Adaptive importance sampling: round 1 draws from the Laplace mixture; each later round from
    # a Gaussian with the weighted mean and covariance of all draws so far. All draws
    # are weighted against the equal mixture of the rounds' proposals (deterministic mixture
    # weights), so an early round's draws stay valid and the first proposal keeps the tails.
    rng = np.random.default_rng([seed, len(orders), 1])
    proposals = [laplace]
    draws = np.empty((0, data.dim))
    log_target = np.empty(0)
    for _ in range(MAX_DRAW_ROUNDS):
        new = _draw(proposals[-1], samples, rng)
        draws = np.concatenate([draws, new])
        log_target = np.concatenate([log_target, _log_likelihood(new, data) + _log_prior(new, data)])
        log_proposal = _logsumexp(np.stack([_log_density(draws, p) for p in proposals]), axis=0)
        log_weight = log_target - log_proposal
        weights = np.exp(log_weight - log_weight.max())
        weights /= weights.sum()
        if 1.0 / np.sum(weights**2) >= samples / 2:
            break
        proposals.append([_moment_fit(draws, weights)])
    draws.flags.writeable = False
    weights.flags.writeable = False
    return _Posterior(draws, weights)


_Component = tuple[np.ndarray, np.ndarray, float]  # mean, Cholesky factor of the precision, weight


def _moment_fit(draws: np.ndarray, weights: np.ndarray) -> _Component:
    mean = weights @ draws
    centred = draws - mean
    covariance = (centred * weights[:, None]).T @ centred
    covariance += 1e-6 * np.eye(len(mean))
    return mean, np.linalg.cholesky(np.linalg.inv(covariance)), 1.0


def _draw(components: list[_Component], size: int, rng: np.random.Generator) -> np.ndarray:
    share = np.array([w for _, _, w in components])
    component = rng.choice(len(components), size=size, p=share / share.sum())
    noise = rng.standard_normal((size, len(components[0][0])))
    draws = np.empty_like(noise)
    for j, (mean, cholesky, _) in enumerate(components):
        rows = component == j
        if rows.any():
            # mean + L^-T z has covariance (L L^T)^-1
            draws[rows] = mean + np.linalg.solve(cholesky.T, noise[rows].T).T
    return draws


def _log_density(draws: np.ndarray, components: list[_Component]) -> np.ndarray:
    dim = draws.shape[1]
    total = sum(w for _, _, w in components)
    parts = [math.log(w / total) - 0.5 * dim * math.log(2 * math.pi) + np.sum(np.log(np.diag(chol)))
             - 0.5 * np.sum(((draws - mean) @ chol) ** 2, axis=1)
             for mean, chol, w in components]
    return _logsumexp(np.stack(parts), axis=0)
