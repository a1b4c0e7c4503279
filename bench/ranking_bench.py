"""Benchmark of the `llm` strategy's statistics against simulated judges (`make bench-ranking`).

Setting: N=30 markets with latent strengths a ~ N(0, 1) drawn afresh per run, K=10, two judges
that prefer the market shown first with probability sigmoid(slope * (a_first - a_second) + 0.8):
"sharp" (slope 3) and "noisy" (slope 1.2). Each comparison is one LLM call.

Methods
- adaptive (analysis.ranking.bradley_terry): each step judges one batch of 10 pairs chosen by the model,
  refits, and stops when the confidence (expected precision@10) reaches the target or the
  default budget runs out. Pair choice does not depend on the target, so the run for target 0.8
  is exactly the first part of the run for target 0.9: each run is simulated once, up to the
  higher target, and read off at both stopping points.
- all pairs: each of the 435 pairs judged once in a random order and position, ranked by wins
  (ties broken at random) or by the Bradley-Terry fit.
- heap: a binary max-heap built bottom-up (Floyd) with the judge as comparator, then the top
  popped 10 times; every comparison is a fresh call and depends on the previous one.
- sliding window: the listwise LLM re-ranking of RankGPT (window 10, step 5, one pass from the
  bottom of a random initial order to the top), with each window's listwise call emulated by
  pairwise calls: all pairs inside the window (pairs already judged in an earlier window are
  reused), ranked by wins; the final top window is the answer.

Metrics: precision@10 = share of the reported 10 in the true top 10; NDCG@10 with graded
relevance 10 for the best market, 9 for the second ... 1 for the tenth, 0 otherwise; steps =
rounds of up to 10 concurrent calls. Calibration compares the reported confidence at the stop
with the realised precision, in bins.
"""

from __future__ import annotations

import os

# One BLAS thread per process: the matrices are small and the runs are spread over processes.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from analysis.ranking.bradley_terry import Comparison, default_budget, estimate_top_k  # noqa: E402
from tests.doubles.simulated_judge import SimulatedJudge, run_until_confident  # noqa: E402

N_MARKETS = 30
K = 10
BATCH = 10
FIRST_BIAS = 0.8
TARGETS = (0.8, 0.9)
JUDGES = {"sharp": 3.0, "noisy": 1.2}
CALIBRATION_BINS = (0.0, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0001)
RESULTS_FILE = Path(__file__).parent / "results" / "ranking.md"
PER_USER, BENCH_ENV = None, dict[str, str]()  # starts no analysis: no per-user limit (bench/limits.py)


@dataclass(frozen=True)
class Outcome:
    """What one method did on one run."""

    comparisons: int
    steps: int
    precision: float
    ndcg: float
    confidence: float = math.nan
    p_exact: float = math.nan
    exact: bool = False
    reached: bool = False


# --- metrics ----------------------------------------------------------------------------------


def precision_at_k(reported: list[str], judge: SimulatedJudge) -> float:
    return len(set(reported[:K]) & set(judge.true_top_k(K))) / K


def ndcg_at_k(reported: list[str], judge: SimulatedJudge) -> float:
    relevance = {s: K - rank for rank, s in enumerate(judge.true_top_k(K))}
    discounts = [1.0 / math.log2(position + 2) for position in range(K)]
    dcg = sum(relevance.get(s, 0) * d for s, d in zip(reported[:K], discounts))
    ideal = sum((K - position) * d for position, d in enumerate(discounts))
    return dcg / ideal


# --- the adaptive strategy --------------------------------------------------------------------


def adaptive_run(judge: SimulatedJudge, seed: int) -> dict[float, Outcome]:
    """One adaptive run up to the highest target, read off at every target's stopping point."""
    budget = default_budget(N_MARKETS, K)
    run = run_until_confident(judge, K, target=max(TARGETS), budget=budget, batch=BATCH, seed=seed)
    outcomes = {}
    for target in TARGETS:
        step = next(
            (i for i, e in enumerate(run.estimates) if e.expected_precision >= target),
            len(run.estimates) - 1,
        )
        estimate = run.estimates[step]
        truth = set(judge.true_top_k(K))
        outcomes[target] = Outcome(
            comparisons=run.log_sizes[step],
            steps=step,
            precision=precision_at_k(estimate.top_k, judge),
            ndcg=ndcg_at_k(estimate.top_k, judge),
            confidence=estimate.expected_precision,
            p_exact=estimate.p_exact,
            exact=set(estimate.top_k) == truth,
            reached=estimate.expected_precision >= target,
        )
    return outcomes


# --- baselines --------------------------------------------------------------------------------


class CountingJudge:
    """Asks the simulated judge one pair at a time (random position) and counts the calls."""

    def __init__(self, judge: SimulatedJudge, rng: np.random.Generator) -> None:
        self.judge, self.rng, self.calls = judge, rng, 0
        self.log: list[Comparison] = []

    def prefers(self, a: str, b: str) -> bool:
        """True if the judge prefers a over b in one fresh call."""
        first, second = (a, b) if self.rng.random() < 0.5 else (b, a)
        comparison = self.judge.compare([(first, second)], self.rng)[0]
        self.calls += 1
        self.log.append(comparison)
        return comparison.winner == a


def all_pairs(judge: SimulatedJudge, seed: int) -> dict[str, Outcome]:
    rng = np.random.default_rng([seed, 1])
    symbols = judge.symbols
    caller = CountingJudge(judge, rng)
    pairs = [(a, b) for i, a in enumerate(symbols) for b in symbols[i + 1 :]]
    wins = dict.fromkeys(symbols, 0.0)
    for index in rng.permutation(len(pairs)):
        a, b = pairs[index]
        wins[a if caller.prefers(a, b) else b] += 1
    tie_break = dict(zip(symbols, rng.random(len(symbols))))
    by_wins = sorted(symbols, key=lambda s: (wins[s], tie_break[s]), reverse=True)[:K]
    fitted = estimate_top_k(symbols, caller.log, K, seed=seed)
    steps = math.ceil(caller.calls / BATCH)
    return {
        "all pairs, by wins": Outcome(
            caller.calls, steps, precision_at_k(by_wins, judge), ndcg_at_k(by_wins, judge)
        ),
        "all pairs, BT fit": Outcome(
            caller.calls,
            steps,
            precision_at_k(fitted.top_k, judge),
            ndcg_at_k(fitted.top_k, judge),
            confidence=fitted.expected_precision,
        ),
    }


def heap_top_k(caller: "CountingJudge", symbols: list[str], seed: int) -> list[str]:
    """The top K by a binary max-heap over the markets in a seeded order, asking `caller`."""
    heap = list(np.random.default_rng([seed, 3]).permutation(symbols))
    for node in reversed(range(len(heap) // 2)):
        _sift_down(heap, node, caller.prefers)
    top = []
    for _ in range(K):
        top.append(heap[0])
        heap[0] = heap[-1]
        heap.pop()
        _sift_down(heap, 0, caller.prefers)
    return top


def heap_selection(judge: SimulatedJudge, seed: int) -> Outcome:
    caller = CountingJudge(judge, np.random.default_rng([seed, 2]))
    top = heap_top_k(caller, judge.symbols, seed)
    return Outcome(caller.calls, caller.calls, precision_at_k(top, judge), ndcg_at_k(top, judge))


def _sift_down(heap: list[str], node: int, prefers: Callable[[str, str], bool]) -> None:
    while True:
        left, right = 2 * node + 1, 2 * node + 2
        if left >= len(heap):
            return
        child = left
        if right < len(heap) and prefers(heap[right], heap[left]):
            child = right
        if not prefers(heap[child], heap[node]):
            return
        heap[node], heap[child] = heap[child], heap[node]
        node = child


def sliding_window(judge: SimulatedJudge, seed: int, window: int = 10, stride: int = 5) -> Outcome:
    caller = CountingJudge(judge, np.random.default_rng([seed, 4]))
    order = list(np.random.default_rng([seed, 5]).permutation(judge.symbols))
    judged: dict[frozenset[str], str] = {}
    steps = 0
    start = len(order) - window
    while True:
        start = max(start, 0)
        members = order[start : start + window]
        fresh = [
            (a, b) for i, a in enumerate(members) for b in members[i + 1 :] if frozenset((a, b)) not in judged
        ]
        for a, b in fresh:
            judged[frozenset((a, b))] = a if caller.prefers(a, b) else b
        steps += math.ceil(len(fresh) / BATCH)
        wins = {s: sum(judged[frozenset((s, o))] == s for o in members if o != s) for s in members}
        order[start : start + window] = sorted(members, key=lambda s: -wins[s])  # stable on ties
        if start == 0:
            break
        start -= stride
    top = order[:K]
    return Outcome(caller.calls, steps, precision_at_k(top, judge), ndcg_at_k(top, judge))


# --- running ----------------------------------------------------------------------------------


def one_run(task: tuple[str, int]) -> tuple[str, int, dict[str, Outcome]]:
    judge_name, run = task
    seed = 1_000_000 * (list(JUDGES).index(judge_name) + 1) + run
    slope = JUDGES[judge_name]
    judge = SimulatedJudge.random(N_MARKETS, slope=slope, first_bias=FIRST_BIAS, seed=seed)
    outcomes = {f"adaptive, target {t}": o for t, o in adaptive_run(judge, seed).items()}
    outcomes.update(all_pairs(judge, seed))
    outcomes["heap top-10"] = heap_selection(judge, seed)
    outcomes["sliding window 10/5"] = sliding_window(judge, seed)
    return judge_name, run, outcomes


def simulate(runs: int, processes: int) -> dict[str, dict[str, list[Outcome]]]:
    tasks = [(judge, run) for judge in JUDGES for run in range(runs)]
    results: dict[str, dict[str, list[Outcome]]] = {judge: {} for judge in JUDGES}
    with Pool(processes) as pool:
        for judge, _, outcomes in pool.imap(one_run, tasks, chunksize=4):
            for method, outcome in outcomes.items():
                results[judge].setdefault(method, []).append(outcome)
    return results


# --- the report -------------------------------------------------------------------------------


def _mean(outcomes: list[Outcome], field: str) -> float:
    return float(np.mean([getattr(o, field) for o in outcomes]))


def summary_table(results: dict[str, dict[str, list[Outcome]]]) -> list[str]:
    lines = [
        "| judge | method | comparisons | LLM calls | steps | precision@10 | NDCG@10 "
        "| reached target | mean confidence | P(exact) reported / realised |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for judge, methods in results.items():
        for method, outcomes in methods.items():
            calls = _mean(outcomes, "comparisons")
            confidence = _mean(outcomes, "confidence")
            reached = exact = "—"
            if method.startswith("adaptive"):
                reached = f"{_mean(outcomes, 'reached'):.0%}"
                exact = f"{_mean(outcomes, 'p_exact'):.3f} / {_mean(outcomes, 'exact'):.3f}"
            cells = [
                f"{judge} (slope {JUDGES[judge]:g})",
                method,
                f"{calls:.1f}",
                f"{calls:.1f}",
                f"{_mean(outcomes, 'steps'):.1f}",
                f"{_mean(outcomes, 'precision'):.3f}",
                f"{_mean(outcomes, 'ndcg'):.3f}",
                reached,
                "—" if math.isnan(confidence) else f"{confidence:.3f}",
                exact,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def calibration_table(results: dict[str, dict[str, list[Outcome]]]) -> list[str]:
    lines = [
        "| judge | target | reported confidence | runs | mean confidence | realised precision@10 |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for judge, methods in results.items():
        for target in TARGETS:
            outcomes = methods[f"adaptive, target {target}"]
            confidence = np.array([o.confidence for o in outcomes])
            precision = np.array([o.precision for o in outcomes])
            for low, high in zip(CALIBRATION_BINS, CALIBRATION_BINS[1:]):
                inside = (confidence >= low) & (confidence < high)
                if inside.any():
                    lines.append(
                        f"| {judge} | {target} | [{low:.2f}, {min(high, 1.0):.2f}"
                        f"{']' if high > 1 else ')'} | {inside.sum()} "
                        f"| {confidence[inside].mean():.3f} | {precision[inside].mean():.3f} |"
                    )
    return lines


def target_checks(results: dict[str, dict[str, list[Outcome]]]) -> list[str]:
    """The issue's targets, each with the measured value and whether it is met."""
    sharp = results["sharp"]["adaptive, target 0.8"]
    precision, comparisons = _mean(sharp, "precision"), _mean(sharp, "comparisons")
    lines = [
        f"- sharp judge, target 0.8: precision@10 >= 0.85: {precision:.3f} ({_verdict(precision >= 0.85)})",
        f"- sharp judge, target 0.8: comparisons <= 70: {comparisons:.1f} ({_verdict(comparisons <= 70)})",
    ]
    for judge, methods in results.items():
        for target in TARGETS:
            outcomes = methods[f"adaptive, target {target}"]
            gap = _mean(outcomes, "precision") - _mean(outcomes, "confidence")
            lines.append(
                f"- {judge} judge, target {target}: realised precision - mean confidence >= -0.03: "
                f"{gap:+.3f} ({_verdict(gap >= -0.03)})"
            )
    return lines


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(results: dict[str, dict[str, list[Outcome]]], runs: int, seconds: float) -> str:
    budget = default_budget(N_MARKETS, K)
    return "\n".join(
        [
            f"### Ranking benchmark: N={N_MARKETS} markets, K={K}, {runs} runs per setting",
            "",
            f"Judges: P(first wins) = sigmoid(slope·(a−b) + {FIRST_BIAS}), a ~ N(0, 1) per run. "
            f"Adaptive: batches of {BATCH} comparisons, budget {budget} comparisons "
            f"(`default_budget({N_MARKETS}, {K})`); one comparison = one LLM call; steps = rounds "
            "of up to 10 concurrent calls (heap: one call per round).",
            "",
            *summary_table(results),
            "",
            "Calibration of the adaptive strategy (reported confidence at the stop vs realised "
            "precision@10):",
            "",
            *calibration_table(results),
            "",
            "Targets from the issue:",
            "",
            *target_checks(results),
            "",
            f"_Wall time {seconds:.0f} s; `python -m bench.ranking_bench`._",
            "",
        ]
    )


def run_from_command_line(
    doc: str,
    results_file: Path,
    measure: Callable[[int, int], object],
    describe: Callable[[object, int, float], str],
) -> None:
    """The ranking benchmarks' shared command line: --runs, --processes, --out; the report is
    printed and written to the results file."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="simulated runs per setting")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=results_file)
    args = parser.parse_args()
    started = time.perf_counter()
    results = measure(args.runs, args.processes)
    text = describe(results, args.runs, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


def main() -> None:
    run_from_command_line(__doc__, RESULTS_FILE, simulate, report)


if __name__ == "__main__":
    main()
