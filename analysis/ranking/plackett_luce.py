"""Top-K selection from listwise LLM answers: the Plackett–Luce statistics of the `llm` strategy.

The model
    A call shows the judge m markets in a display order and gets back their full order, best
    first (an `Order`). The judge is modelled as choosing the best of the markets left, again
    and again (Plackett–Luce): a market with strength s shown at display position p has weight
        w = exp(s) * beta[p]   (log w = s + bias[p])
    and is chosen from the markets left with probability w / (sum of their weights). A pair is
    the m = 2 case: P(first wins) = sigmoid(s[first] - s[second] + bias[0] - bias[1]), the
    Bradley–Terry model of analysis/ranking/bradley_terry.py. Priors: exp(s) ~ Gamma(a, a), whose
    shape a sets the spread of the strengths, i.e. the judge's sharpness, and is learned: it lives
    on a grid matching the pairwise model's scales (sd of s from 0.25 to 12) with the same
    half-Cauchy weights; every display position's weight beta ~ Gamma(1.5, 1.5) (sd of its log
    about 1), so the position biases are learned from the log (the display order is shuffled on
    every call, which is what makes them learnable).

The fit (pure numpy, deterministic)
    Every call refits from the whole log. A Gibbs sampler with Caron & Doucet's (2012) latent
    exponential variables, one per choice, makes every conditional conjugate: the choices'
    latent times, then all strengths, then all position weights, then the shape on its grid.
    BURN_IN sweeps are dropped, then every THIN-th of the next sweeps is kept (DEFAULT_SAMPLES), from a
    generator seeded by the
    caller's seed and the log's length, so the same log gives the same posterior. The chain's
    effective sample size (batch means on each draw's precision of the reported set) is
    reported as `effective_draws`, and `stop_reason` will not stop on fewer than
    MIN_EFFECTIVE_DRAWS: with too few effective draws the confidence jitters, and a run that
    stops the first time it crosses the target stops on that noise. (An importance sampler
    from Laplace fits was tried first: at 30 markets its effective sample size fell below 100
    of 2000 on one posterior in ten, at 100 markets almost always, and it then read high.)

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

from analysis.ranking.bradley_terry import Comparison
from analysis.ranking.top_k_posterior import SCALE_GRID, best_set, log_scale_prior, top_k_membership

DEFAULT_SAMPLES = 2000  # draws kept from the chain
MIN_EFFECTIVE_DRAWS = 200  # the confidence's standard error is then below about 0.1 / sqrt(200) = 0.007
ESS_BATCHES = 40  # batch means for the chain's effective sample size
FLOOR_WEIGHT = 0.001
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
    """ "target reached", "target not reached" (budget spent) or None (go on). A posterior with
    too few effective draws never counts as reaching the target."""
    if estimate.expected_precision >= target and estimate.effective_draws >= MIN_EFFECTIVE_DRAWS:
        return "target reached"
    if calls >= budget:
        return "target not reached"
    return None


def estimate_top_k(
    symbols: Sequence[str],
    orders: Iterable[Order],
    k: int,
    *,
    seed: int,
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
    in_top = top_k_membership(strengths, k)
    p_in_top = posterior.weights @ in_top
    mean_strength = posterior.weights @ strengths
    chosen = best_set(p_in_top, mean_strength, k)
    exact = np.all(in_top[:, chosen] > 0, axis=1)
    bias = posterior.weights @ posterior.draws[:, n:]
    return ListEstimate(
        top_k=[symbols[i] for i in chosen],
        p_in_top_k={s: float(p) for s, p in zip(symbols, p_in_top)},
        expected_precision=float(p_in_top[chosen].mean()),
        p_exact=float(posterior.weights @ exact),
        strengths={s: float(v) for s, v in zip(symbols, mean_strength - mean_strength.mean())},
        position_bias=[float(b - bias[-1]) for b in bias],
        effective_draws=_effective_draws(in_top[:, chosen].mean(axis=1)),
    )


def choose_sets(
    symbols: Sequence[str],
    orders: Sequence[Order],
    k: int,
    list_size: int,
    calls: int,
    *,
    seed: int,
    estimate: ListEstimate | None = None,
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


def _effective_draws(series: np.ndarray) -> float:
    """Effective sample size of a chain's series by batch means: the variance of the mean the
    batches show, against the variance of independent draws. The series is each draw's
    precision of the reported set, whose mean is the confidence."""
    size = len(series) // ESS_BATCHES
    variance = series.var()
    if size < 1 or variance == 0:
        return float(len(series))
    means = series[: size * ESS_BATCHES].reshape(ESS_BATCHES, size).mean(axis=1)
    return float(min(len(series), len(series) * variance / max(size * means.var(), 1e-300)))


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


def _fresh_display_order(
    members: list[int], symbols: tuple[str, ...], seen: set, rng: np.random.Generator, tries: int = 50
) -> tuple[str, ...] | None:
    for _ in range(tries):
        shown = tuple(symbols[i] for i in rng.permutation(members))
        if shown not in seen:
            return shown
    return None


# --- the posterior ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Posterior:
    draws: np.ndarray  # draws x (log strengths..., log position weights...)
    weights: np.ndarray


# --- the Gibbs sampler (Caron & Doucet 2012) ------------------------------------------------------

BURN_IN = 300
THIN = 2  # sweeps per kept draw
BIAS_SHAPE = 1.5  # Gamma(1.5, 1.5) prior on each position's weight: sd of its log about 1


def _trigamma(x: float) -> float:
    total = 0.0
    while x < 6.0:
        total += 1.0 / x**2
        x += 1.0
    return total + 1 / x + 1 / (2 * x**2) + 1 / (6 * x**3) - 1 / (30 * x**5) + 1 / (42 * x**7)


def _shape_for_sd(sd: float) -> float:
    """The Gamma(a, a) shape whose log has standard deviation `sd` (trigamma(a) = sd^2)."""
    low, high = 1e-4, 1e4
    for _ in range(200):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if _trigamma(mid) > sd**2 else (low, mid)
    return math.sqrt(low * high)


SHAPE_GRID = np.array([_shape_for_sd(s) for s in SCALE_GRID])


@dataclass(frozen=True)
class _Stages:
    """Every choice of every order, flattened: entry e says that `item` (shown at `pos`) was
    still to be chosen at stage `stage`; `chosen_item`/`chosen_pos` per stage."""

    stage: np.ndarray
    item: np.ndarray
    pos: np.ndarray
    chosen_item: np.ndarray
    chosen_pos: np.ndarray
    n_stages: int


def _stages(symbols: tuple[str, ...], orders: tuple[Order, ...]) -> _Stages:
    index = {s: i for i, s in enumerate(symbols)}
    stage, item, pos, chosen_item, chosen_pos = [], [], [], [], []
    s = 0
    for o in orders:
        place = {x: p for p, x in enumerate(o.shown)}
        ranked = [(index[x], place[x]) for x in o.ranking]
        for j in range(len(ranked) - 1):
            chosen_item.append(ranked[j][0])
            chosen_pos.append(ranked[j][1])
            for i, p in ranked[j:]:
                stage.append(s)
                item.append(i)
                pos.append(p)
            s += 1
    as_int = lambda x: np.array(x, dtype=np.int64)  # noqa: E731
    return _Stages(as_int(stage), as_int(item), as_int(pos), as_int(chosen_item), as_int(chosen_pos), s)


@lru_cache(maxsize=8)
def _posterior(symbols: tuple[str, ...], orders: tuple[Order, ...], seed: int, samples: int) -> _Posterior:
    """`samples` draws of the chain, one every THIN sweeps after BURN_IN, each weighing 1/samples."""
    n = len(symbols)
    positions = max([len(o.shown) for o in orders], default=2)
    st = _stages(symbols, orders)
    rng = np.random.default_rng([seed, len(orders), 1])
    wins = np.bincount(st.chosen_item, minlength=n).astype(float)
    pos_wins = np.bincount(st.chosen_pos, minlength=positions).astype(float)
    log_shape_prior = log_scale_prior(SCALE_GRID)
    shape_lgamma = np.array([math.lgamma(a) for a in SHAPE_GRID])
    lam, beta = np.ones(n), np.ones(positions)
    shape = SHAPE_GRID[len(SHAPE_GRID) // 2]
    kept = np.empty((samples, n + positions))
    for it in range(BURN_IN + samples * THIN):
        if st.n_stages:
            rate = np.bincount(st.stage, lam[st.item] * beta[st.pos], minlength=st.n_stages)
            z = rng.exponential(1.0 / rate)
            zs = z[st.stage]
            lam_rate = shape + np.bincount(st.item, zs * beta[st.pos], minlength=n)
        else:
            lam_rate = np.full(n, shape)
        lam = np.maximum(rng.gamma(shape + wins, 1.0 / lam_rate), 1e-300)
        if st.n_stages:
            beta_rate = BIAS_SHAPE + np.bincount(st.pos, zs * lam[st.item], minlength=positions)
        else:
            beta_rate = np.full(positions, BIAS_SHAPE)
        beta = rng.gamma(BIAS_SHAPE + pos_wins, 1.0 / beta_rate)
        # the shape (the judge's sharpness) given the strengths, on its grid
        log_lam, sum_lam = np.log(lam), lam.sum()
        log_p = (
            log_shape_prior
            + n * (SHAPE_GRID * np.log(SHAPE_GRID) - shape_lgamma)
            + (SHAPE_GRID - 1) * log_lam.sum()
            - SHAPE_GRID * sum_lam
        )
        p = np.exp(log_p - log_p.max())
        shape = SHAPE_GRID[rng.choice(len(SHAPE_GRID), p=p / p.sum())]
        if it >= BURN_IN and (it - BURN_IN) % THIN == 0:
            row = (it - BURN_IN) // THIN
            kept[row, :n] = log_lam
            kept[row, n:] = np.log(beta)
    weights = np.full(samples, 1.0 / samples)
    kept.flags.writeable = False
    weights.flags.writeable = False
    return _Posterior(kept, weights)
