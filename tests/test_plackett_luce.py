"""The listwise statistics (analysis/plackett_luce.py) against a simulated Plackett–Luce judge."""

import numpy as np
import pytest

from analysis.ranking import bradley_terry
from analysis.ranking.plackett_luce import (
    MIN_EFFECTIVE_DRAWS,
    ListEstimate,
    Order,
    choose_sets,
    default_budget,
    estimate_top_k,
    stop_reason,
)
from tests.doubles.listwise_judge import ListwiseJudge, run_listwise
from tests.doubles.simulated_judge import SimulatedJudge

N, K = 30, 10


def precision(reported, judge) -> float:
    return len(set(reported) & set(judge.true_top_k(K))) / K


def test_pairs_are_the_m2_case_of_the_pairwise_model():
    judge = SimulatedJudge.random(N, slope=3.0, first_bias=0.8, seed=5)
    rng = np.random.default_rng(5)
    pairs = [tuple(map(str, rng.choice(judge.symbols, 2, replace=False))) for _ in range(120)]
    log = judge.compare(pairs, rng)
    pairwise = bradley_terry.estimate_top_k(judge.symbols, log, K, seed=1)
    listwise = estimate_top_k(judge.symbols, [Order.from_comparison(c) for c in log], K, seed=1)

    assert len(set(listwise.top_k) ^ set(pairwise.top_k)) <= 2  # at most one near-tie swapped
    gaps = [abs(listwise.p_in_top_k[s] - pairwise.p_in_top_k[s]) for s in judge.symbols]
    assert max(gaps) < 0.1
    assert listwise.expected_precision == pytest.approx(pairwise.expected_precision, abs=0.03)
    assert listwise.first_bias == pytest.approx(pairwise.first_bias, abs=0.3)


@pytest.mark.slow
def test_the_first_round_shows_every_market_once_and_no_display_order_twice():
    judge = ListwiseJudge.random(N, seed=11)
    run = run_listwise(judge, K, 10, target=0.99, seed=11, max_calls=30)

    first_round = run.rounds_shown[0]
    assert len(first_round) == 3 and sorted(s for shown in first_round for s in shown) == sorted(
        judge.symbols
    )
    shown = [o.shown for o in run.orders]
    assert len(shown) == 30 and len(set(shown)) == len(shown)
    assert all(len(set(s)) == 10 for s in shown)


@pytest.mark.slow
def test_later_rounds_show_the_markets_near_the_kth_place():
    judge = ListwiseJudge.random(N, seed=12)
    run = run_listwise(judge, K, 10, target=0.99, seed=12, max_calls=15)
    truth = judge.true_top_k(N)
    boundary = set(truth[K - 4 : K + 4])  # ranks 7..14
    far = set(truth[:3]) | set(truth[-8:])
    later = [s for sets in run.rounds_shown[1:] for shown in sets for s in shown]
    per_boundary_market = sum(s in boundary for s in later) / len(boundary)
    per_far_market = sum(s in far for s in later) / len(far)
    assert per_boundary_market > 2 * per_far_market


@pytest.mark.slow
def test_replay_gives_the_same_posterior_and_the_same_next_sets():
    judge = ListwiseJudge.random(N, seed=13)
    log = run_listwise(judge, K, 10, target=0.99, seed=13, max_calls=9).orders
    replayed = list(log)  # a new list, as a step reloaded from Redis would have

    first = estimate_top_k(judge.symbols, log, K, seed=77)
    again = estimate_top_k(judge.symbols, replayed, K, seed=77)
    assert first == again
    assert choose_sets(judge.symbols, log, K, 10, 3, seed=77) == choose_sets(
        judge.symbols, replayed, K, 10, 3, seed=77
    )
    # a longer log chooses afresh (no set repeated from the earlier choice)
    longer = choose_sets(judge.symbols, log[:-1], K, 10, 3, seed=77)
    assert longer != choose_sets(judge.symbols, log, K, 10, 3, seed=77)


@pytest.mark.slow
def test_a_first_position_bias_is_learned_from_shuffled_display_orders():
    judge = ListwiseJudge.random(N, seed=14, first_bias=2.0)
    run = run_listwise(judge, K, 10, target=0.99, seed=14, max_calls=15)
    bias = run.estimates[-1].position_bias
    assert bias[0] > 1.0 and abs(bias[0]) > max(abs(b) for b in bias[1:])


@pytest.mark.slow  # twelve full simulated runs
def test_a_sharp_judge_reaches_0_85_in_about_ten_calls_and_reports_honestly():
    judges = [ListwiseJudge.random(N, seed=200 + i) for i in range(12)]
    runs = [run_listwise(judge, K, 10, target=0.8, seed=i) for i, judge in enumerate(judges)]
    realised = [precision(run.estimates[-1].top_k, judge) for run, judge in zip(runs, judges)]
    reported = [run.estimates[-1].expected_precision for run in runs]

    assert all(run.stopped_because == "target reached" for run in runs)
    assert np.mean([len(run.orders) for run in runs]) <= 12  # pairwise needs ~70 calls
    assert np.mean(realised) >= np.mean(reported) - 0.08  # honest within the noise of 12 runs


def test_too_few_effective_draws_never_count_as_reaching_the_target():
    estimate = ListEstimate(
        ["A"],
        {"A": 1.0, "B": 0.0},
        0.95,
        0.9,
        {"A": 1.0, "B": -1.0},
        [0.0, 0.0],
        effective_draws=MIN_EFFECTIVE_DRAWS - 1,
    )
    assert stop_reason(estimate, 5, target=0.9, budget=34) is None
    assert stop_reason(estimate, 34, target=0.9, budget=34) == "target not reached"
    sure = ListEstimate(**{**estimate.__dict__, "effective_draws": float(MIN_EFFECTIVE_DRAWS)})
    assert stop_reason(sure, 5, target=0.9, budget=34) == "target reached"


def test_the_budget_counts_calls_in_pair_equivalents():
    assert default_budget(30, 10) == 34 and default_budget(30, 2) == 300 and default_budget(100, 10) == 112


@pytest.mark.parametrize(
    "bad",
    [
        Order(("M00", "M01"), ("M00",)),
        Order(("M00", "M01"), ("M00", "M02")),
        Order(("M00", "M00"), ("M00", "M00")),
        Order(("M00", "ZZZ"), ("ZZZ", "M00")),
    ],
)
def test_an_order_that_does_not_rank_exactly_what_it_shows_is_refused(bad):
    with pytest.raises(ValueError):
        estimate_top_k([f"M{i:02d}" for i in range(5)], [bad], 2, seed=1)
