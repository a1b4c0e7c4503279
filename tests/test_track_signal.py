"""Planted signal and pure noise: the IC recovers a known effect within its interval, and on
noise the overlap-aware interval covers 0 about 95% of the time (a naive one would not).

Markets carry a signal s (N(0,1) per market and bar, shown in the candle's volume as exp(s));
the record at t ranks by s_t. Bar b's log return is beta*s(b-2) - gamma*s(b-1) + sigma*eps: the
effect starts one bar after the decision (the entry bar, which a trader cannot capture, carries
a trap of the opposite sign), so an entry at close(t) instead of close(t+1) would show a negative
IC. For normal variables the expected sample Spearman of n pairs with correlation rho is
6/(pi(n+1)) * (asin(rho) + (n-2) asin(rho/2)).
"""

import math

import numpy as np
import pytest

from analysis.track.aggregate import summarize
from analysis.track.metrics import record_metrics
from analysis.track.model import PickRecord, Ranked
from analysis.track.returns import Closes, forward_returns_of

HOUR_MS = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
PERSISTENCE = 0.98


def synthetic(
    seed: int, markets: int, bars: int, beta: float, gamma: float, sigma: float, persistence: float = 0.0
):
    """Closes per market and the records ranking by the signal at each decision; the signal is
    AR(1) with `persistence` (0: new every bar; near 1: a ranking that changes slowly, like
    indicators do)."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(markets, bars))
    for col in range(1, bars):
        s[:, col] = persistence * s[:, col - 1] + math.sqrt(1 - persistence**2) * s[:, col]
    g = sigma * rng.normal(size=(markets, bars))
    g[:, 2:] += beta * s[:, :-2]
    g[:, 1:] -= gamma * s[:, :-1]
    close = 100 * np.exp(np.cumsum(g, axis=1))
    opens_ms = T0 + HOUR_MS * np.arange(bars, dtype=np.int64)
    symbols = [f"M{i:02d}/USDT" for i in range(markets)]
    closes = {sym: Closes(opens_ms, close[i]) for i, sym in enumerate(symbols)}
    records = []
    for row in range(bars):
        order = np.argsort(-s[:, row], kind="stable")
        records.append(
            PickRecord(
                t=int(opens_ms[row]) + HOUR_MS,
                timeframe="1h",
                source="synthetic",
                strategy="signal",
                model=None,
                k=5,
                analysis_id="",
                schedule_id=None,
                universe=tuple(Ranked(symbols[i], float(s[i, row]), r + 1) for r, i in enumerate(order)),
            )
        )
    known_until = int(opens_ms[-1]) + HOUR_MS
    return records, closes, known_until


def scored(records, closes, known_until, horizon):
    rows = []
    for record in records:
        ret = forward_returns_of(record, closes, [horizon], known_until)
        if ret:
            rows.append(record_metrics(record, ret[horizon]))
    return rows


def summary_of(rows, horizon, metric="ic"):
    return summarize(
        [getattr(m, metric) for m in rows],
        [m.t for m in rows],
        metric=metric,
        horizon=horizon,
        timeframe="1h",
    )


def expected_spearman(rho: float, n: int) -> float:
    return 6 / (math.pi * (n + 1)) * (math.asin(rho) + (n - 2) * math.asin(rho / 2))


@pytest.mark.parametrize("horizon", [1, 4])
def test_a_planted_signal_is_recovered_within_the_interval(horizon):
    beta = gamma = 0.004
    sigma = 0.01
    records, closes, known_until = synthetic(7, markets=30, bars=600, beta=beta, gamma=gamma, sigma=sigma)
    # Correlation of s_t with the log return from close(t+1) to close(t+1+h).
    variance = {
        1: beta**2 + gamma**2 + sigma**2,
        4: beta**2 + 3 * (beta - gamma) ** 2 + gamma**2 + 4 * sigma**2,
    }[horizon]
    expected = expected_spearman(beta / math.sqrt(variance), 30)
    summary = summary_of(scored(records, closes, known_until, horizon), horizon)
    assert summary.ci95_low <= expected <= summary.ci95_high
    assert summary.ci95_low > 0.1  # and it is told apart from no signal
    assert summary.n_independent == pytest.approx(summary.n / horizon, abs=1)


@pytest.mark.slow
def test_on_noise_the_overlap_aware_interval_covers_zero_about_95_percent_of_seeds():
    """Rankings that persist (as indicator rankings do) make overlapping records' metrics move
    together; the interval counts only the records h bars apart."""
    seeds, horizon = 100, 4
    covered = {"ic": 0, "top_k_excess": 0}
    naive_covered = 0
    for seed in range(seeds):
        records, closes, known_until = synthetic(
            seed, markets=10, bars=160, beta=0.0, gamma=0.0, sigma=0.01, persistence=PERSISTENCE
        )
        rows = scored(records, closes, known_until, horizon)
        for metric in covered:
            s = summary_of(rows, horizon, metric)
            covered[metric] += s.ci95_low <= 0 <= s.ci95_high
        naive = summary_of(rows, 1)  # as if every record were independent
        naive_covered += naive.ci95_low <= 0 <= naive.ci95_high
    # Binomial(100, 0.95) falls in 88..99 with probability 0.99.
    assert 88 <= covered["ic"] <= 99 and 88 <= covered["top_k_excess"] <= 99, covered
    # Counting every overlapping record as independent makes the interval too narrow.
    assert naive_covered < 85, naive_covered
