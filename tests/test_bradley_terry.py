"""The `llm` strategy's statistics (analysis/ranking/bradley_terry.py) against a simulated judge."""

import numpy as np
import pytest

from analysis.ranking import bradley_terry
from analysis.ranking.bradley_terry import (
    Comparison,
    choose_pairs,
    default_budget,
    estimate_top_k,
    ordered_pairs,
    stop_reason,
)
from tests.doubles.simulated_judge import SimulatedJudge, run_until_confident

N = 30
K = 10


def sharp_judge(seed: int, first_bias: float = 0.8) -> SimulatedJudge:
    return SimulatedJudge.random(N, slope=3.0, first_bias=first_bias, seed=seed)


def noisy_judge(seed: int, first_bias: float = 0.8) -> SimulatedJudge:
    return SimulatedJudge.random(N, slope=1.2, first_bias=first_bias, seed=seed)


def random_log(judge: SimulatedJudge, size: int, seed: int) -> list[Comparison]:
    """`size` comparisons of random pairs in random order."""
    rng = np.random.default_rng(seed)
    pairs = [tuple(map(str, rng.choice(judge.symbols, 2, replace=False))) for _ in range(size)]
    return judge.compare(pairs, rng)


def precision(reported: list[str], judge: SimulatedJudge) -> float:
    return len(set(reported) & set(judge.true_top_k(K))) / K


@pytest.mark.slow  # 30-110 s: many full simulated runs
def test_sharp_judge_reaches_target_with_few_comparisons_and_is_mostly_right():
    judges = [sharp_judge(100 + i) for i in range(24)]
    runs = [
        run_until_confident(judge, K, target=0.8, budget=default_budget(N, K), seed=i)
        for i, judge in enumerate(judges)
    ]
    realised = [precision(run.estimates[-1].top_k, judge) for run, judge in zip(runs, judges)]
    reported = [run.estimates[-1].expected_precision for run in runs]

    assert all(run.stopped_because == "target reached" for run in runs)
    assert np.mean([len(run.comparisons) for run in runs]) <= 90  # heap selection needs ~110
    assert np.mean(realised) >= 0.75
    assert np.mean(realised) >= np.mean(reported) - 0.07  # honest within sampling error of 24 runs


def test_the_budget_ends_a_run_that_cannot_reach_its_target():
    run = run_until_confident(noisy_judge(7), K, target=0.99, budget=40, seed=3)

    assert run.stopped_because == "target not reached"
    assert len(run.comparisons) == 40
    assert run.estimates[-1].expected_precision < 0.99


def test_stop_reason():
    estimate = estimate_top_k(["A", "B", "C"], [], 1, seed=0)
    assert stop_reason(estimate, 0, target=0.9, budget=10) is None
    assert stop_reason(estimate, 10, target=0.9, budget=10) == "target not reached"
    assert stop_reason(estimate, 10, target=0.1, budget=10) == "target reached"


def test_default_budget_grows_with_the_markets_up_to_every_pair_both_ways():
    assert default_budget(30, 10) == 300
    assert default_budget(100, 10) == 1000
    assert default_budget(6, 1) == 30 == ordered_pairs(6)
    assert default_budget(3, 1) == 6


def test_an_ordered_pair_is_never_asked_twice_and_a_second_look_turns_the_pair_round():
    judge = sharp_judge(4)
    symbols = judge.symbols[:5]
    rng = np.random.default_rng(4)
    log = []
    while True:
        pairs = choose_pairs(symbols, log, 2, 6, seed=len(log))
        if not pairs:
            break
        asked = {(c.first, c.second) for c in log}
        assert not asked & set(pairs)
        log = log + judge.compare(pairs, rng)
    # Every pair was then asked both ways round, each way once.
    assert sorted((c.first, c.second) for c in log) == sorted(
        (a, b) for a in symbols for b in symbols if a != b
    )


def test_same_log_and_seed_give_the_same_answer_in_a_fresh_process():
    judge = sharp_judge(1)
    log = random_log(judge, 60, seed=1)
    first = estimate_top_k(judge.symbols, log, K, seed=42)
    pairs = choose_pairs(judge.symbols, log, K, 10, seed=42)
    bradley_terry._posterior.cache_clear()  # as after a worker restart

    assert estimate_top_k(judge.symbols, log, K, seed=42) == first
    assert choose_pairs(judge.symbols, log, K, 10, seed=42) == pairs
    assert choose_pairs(judge.symbols, log, K, 10, seed=42, estimate=first) == pairs


def test_another_seed_changes_only_the_sampling_noise():
    judge = sharp_judge(2)
    log = random_log(judge, 120, seed=2)
    one = estimate_top_k(judge.symbols, log, K, seed=1)
    other = estimate_top_k(judge.symbols, log, K, seed=2)

    assert one.expected_precision == pytest.approx(other.expected_precision, abs=0.04)
    assert max(abs(one.p_in_top_k[s] - other.p_in_top_k[s]) for s in judge.symbols) < 0.1


def test_estimate_reports_probabilities_that_sum_to_k_and_the_most_likely_set():
    judge = sharp_judge(3)
    estimate = estimate_top_k(judge.symbols, random_log(judge, 80, seed=3), K, seed=0)
    p = estimate.p_in_top_k

    assert all(0.0 <= value <= 1.0 for value in p.values())
    assert sum(p.values()) == pytest.approx(K)
    assert len(set(estimate.top_k)) == K
    left_out = [s for s in judge.symbols if s not in estimate.top_k]
    assert min(p[s] for s in estimate.top_k) >= max(p[s] for s in left_out)
    assert estimate.expected_precision == pytest.approx(np.mean([p[s] for s in estimate.top_k]))
    assert 0.0 <= estimate.p_exact <= estimate.expected_precision
    shown = [estimate.strengths[s] for s in estimate.top_k]
    assert shown == sorted(shown, reverse=True)


def test_the_model_learns_how_sharp_the_judge_is():
    sharp_confidence, noisy_confidence = [], []
    for seed in range(4, 9):
        sharp, noisy = sharp_judge(seed), noisy_judge(seed)  # same latent strengths
        from_sharp = estimate_top_k(sharp.symbols, random_log(sharp, 150, seed=seed), K, seed=0)
        from_noisy = estimate_top_k(noisy.symbols, random_log(noisy, 150, seed=seed), K, seed=0)
        sharp_confidence.append(from_sharp.expected_precision)
        noisy_confidence.append(from_noisy.expected_precision)
        # Strengths are on the judge's logit scale: slope 3 spreads them ~2.5 times wider.
        spread = [np.std(list(e.strengths.values())) for e in (from_sharp, from_noisy)]
        assert spread[0] > 1.8 * spread[1]

    assert np.mean(sharp_confidence) > np.mean(noisy_confidence) + 0.04


@pytest.mark.parametrize("true_bias", [0.8, 0.0, -0.5])
def test_the_fitted_first_position_bias_recovers_the_judge_bias(true_bias):
    judge = noisy_judge(5, first_bias=true_bias)
    estimate = estimate_top_k(judge.symbols, random_log(judge, 400, seed=5), K, seed=0)

    assert estimate.first_bias == pytest.approx(true_bias, abs=0.3)


def test_an_empty_log_gives_the_prior_and_a_matching_of_distinct_symbols():
    symbols = [f"M{i:02d}" for i in range(N)]
    estimate = estimate_top_k(symbols, [], K, seed=0)
    pairs = choose_pairs(symbols, [], K, 10, seed=0)

    assert all(abs(p - K / N) < 0.1 for p in estimate.p_in_top_k.values())
    assert estimate.expected_precision == pytest.approx(K / N, abs=0.1)
    assert len(pairs) == 10
    assert len({s for pair in pairs for s in pair}) == 20  # every symbol at most once


def test_the_second_batch_brings_in_every_symbol_not_yet_compared():
    judge = sharp_judge(6)
    log = judge.compare(choose_pairs(judge.symbols, [], K, 10, seed=6), np.random.default_rng(6))
    compared = {s for c in log for s in (c.first, c.second)}
    second = choose_pairs(judge.symbols, log, K, 10, seed=6)

    assert set(judge.symbols) - compared <= {s for pair in second for s in pair}


@pytest.mark.parametrize("log_size", [0, 40, 200])
def test_choose_pairs_never_pairs_a_symbol_with_itself_or_repeats_a_pair(log_size):
    judge = sharp_judge(8)
    log = random_log(judge, log_size, seed=8)
    for seed in range(3):
        pairs = choose_pairs(judge.symbols, log, K, 10, seed=seed)
        assert len(pairs) == 10
        assert all(a != b and a in judge.strengths and b in judge.strengths for a, b in pairs)
        assert len({frozenset(pair) for pair in pairs}) == len(pairs)


def test_choose_pairs_randomises_which_symbol_is_shown_first():
    judge = sharp_judge(9)
    log = random_log(judge, 60, seed=9)
    index = {s: i for i, s in enumerate(judge.symbols)}
    pairs = [p for seed in range(4) for p in choose_pairs(judge.symbols, log, K, 10, seed=seed)]
    lower_index_first = np.mean([index[a] < index[b] for a, b in pairs])

    assert 0.2 < lower_index_first < 0.8


@pytest.mark.parametrize(
    ("symbols", "batch", "expected"), [("ABC", 10, 3), ("ABCDE", 10, 10), ("ABCDEF", 14, 14)]
)
def test_choose_pairs_fills_the_batch_while_distinct_pairs_remain(symbols, batch, expected):
    pairs = choose_pairs(list(symbols), [], 1, batch, seed=0)

    assert len({frozenset(pair) for pair in pairs}) == len(pairs) == expected


def test_a_lower_target_stops_on_the_way_to_a_higher_one():
    """The benchmark reads both targets off one run; that relies on this."""
    judge = sharp_judge(10)
    low = run_until_confident(judge, K, target=0.8, budget=200, seed=10)
    high = run_until_confident(judge, K, target=0.9, budget=200, seed=10)

    assert high.comparisons[: len(low.comparisons)] == low.comparisons
    assert high.estimates[: len(low.estimates)] == low.estimates


def test_a_comparison_naming_an_unknown_symbol_is_refused():
    symbols = ["BTC/USDT", "ETH/USDT"]
    with pytest.raises(ValueError, match="'DOGE/USDT', which is not among the symbols"):
        estimate_top_k(symbols, [Comparison("BTC/USDT", "DOGE/USDT", "BTC/USDT")], 1, seed=0)
    with pytest.raises(ValueError, match="'XRP/USDT', which is not among the symbols"):
        choose_pairs(symbols, [Comparison("XRP/USDT", "ETH/USDT", "ETH/USDT")], 1, 2, seed=0)


@pytest.mark.parametrize(
    ("comparison", "message"),
    [
        (Comparison("A", "A", "A"), "with itself"),
        (Comparison("A", "B", "C"), "winner 'C', which is not in the pair"),
    ],
)
def test_a_malformed_comparison_is_refused(comparison, message):
    with pytest.raises(ValueError, match=message):
        estimate_top_k(["A", "B", "C"], [comparison], 1, seed=0)


def test_k_must_fit_the_symbols():
    with pytest.raises(ValueError, match="k must be between 1 and 3"):
        estimate_top_k(["A", "B", "C"], [], 4, seed=0)
