"""How much precision@10 a given number of comparisons can buy (`make bench-ranking`, part 2).

The issue asks, for the sharp judge at target 0.8, for realised precision@10 >= 0.85 with at most
70 comparisons on average while the confidence stays honest. This measures the curve behind that
figure: each design judges 90 comparisons with no stopping rule, and the precision@10 of the
reported top 10 is read after every batch. If no design reaches 0.85 by 70 comparisons, no
stopping rule can either (on average it stops around the comparisons it needs).

Designs (each in its own worker processes, since some replace one piece of
analysis.ranking.bradley_terry, which holds module-level caches):
- shipped: the strategy as it runs (knowledge-gradient pairs, batches of 10).
- near-sequential: the same rule with batches of 2, to see what batching costs.
- information gain: pairs chosen by the expected drop in the entropy of top-10 membership
  instead of the knowledge gradient (`_lookahead_gain` replaced).
- sharpness known: the prior's scale pinned to the judge's true one, i.e. a correctly specified
  model, the best case for both the design and the estimate (`SCALE_GRID` replaced).
- random pairs: no adaptivity, the floor.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from dataclasses import dataclass  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from analysis.ranking import bradley_terry as bt  # noqa: E402
from analysis.ranking.top_k_posterior import top_k_membership  # noqa: E402
from bench.ranking_bench import (  # noqa: E402
    FIRST_BIAS,
    JUDGES,
    N_MARKETS,
    K,
    precision_at_k,
    run_from_command_line,
)
from tests.doubles.simulated_judge import SimulatedJudge  # noqa: E402

COMPARISONS = 90
REPORTED_AT = (30, 40, 50, 60, 70, 80, 90)
GOAL = 0.85  # the precision@10 figure for the sharp judge
RESULTS_FILE = Path(__file__).parent / "results" / "ranking_frontier.md"
PER_USER, BENCH_ENV = None, dict[str, str]()  # starts no analysis: no per-user limit (bench/limits.py)


@dataclass(frozen=True)
class Design:
    label: str
    batch: int = 10
    setup: str = ""  # the name of a function below, run once in each worker process
    random_pairs: bool = False


DESIGNS = (
    Design("shipped (knowledge gradient, batches of 10)"),
    Design("near-sequential (knowledge gradient, batches of 2)", batch=2),
    Design("information gain (entropy of membership), batches of 10", setup="use_information_gain"),
    Design("sharpness known (correct model), batches of 10", setup="pin_true_sharpness"),
    Design("random pairs, batches of 10", random_pairs=True),
)


def use_information_gain() -> None:
    bt._lookahead_gain = _information_gain


def pin_true_sharpness() -> None:
    # Strengths a ~ N(0, 1) times the slope: the judge's logit scale is the slope itself.
    bt.SCALE_GRID = (JUDGES["sharp"],)


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def _information_gain(strengths, bias, pairs, k):
    """Expected drop in the summed entropy of each symbol's top-K membership (same shapes and
    reweighting as bt._lookahead_gain)."""
    in_top = top_k_membership(strengths, k)
    now = in_top.mean(axis=0)
    logits = strengths[:, pairs[:, 0]] - strengths[:, pairs[:, 1]] + bias[:, None]
    p_first = 1.0 / (1.0 + np.exp(-logits))
    p_outcome = p_first.mean(axis=0)[:, None]
    mass_first = (p_first.T @ in_top) / len(bias)
    mass_second = now[None, :] - mass_first
    after = p_outcome * _entropy(mass_first / p_outcome) + (1 - p_outcome) * _entropy(
        mass_second / (1 - p_outcome)
    )
    return _entropy(now).sum() - after.sum(axis=1)


def _random_pairs(symbols: list[str], batch: int, rng: np.random.Generator):
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < batch:
        first, second = rng.choice(len(symbols), 2, replace=False)
        if (second, first) not in chosen:
            chosen.add((int(first), int(second)))
    return [(symbols[a], symbols[b]) for a, b in chosen]


def _init(setup: str) -> None:
    if setup:
        globals()[setup]()


def one_run(task: tuple[Design, int]) -> list[tuple[int, float, float]]:
    """(comparisons so far, reported confidence, realised precision@10) after every batch."""
    design, run = task
    seed = 5_000_000 + run
    judge = SimulatedJudge.random(N_MARKETS, slope=JUDGES["sharp"], first_bias=FIRST_BIAS, seed=seed)
    rng, design_rng = np.random.default_rng([seed, 99]), np.random.default_rng([seed, 7])
    log: list[bt.Comparison] = []
    trace = []
    while True:
        estimate = bt.estimate_top_k(judge.symbols, log, K, seed=seed)
        trace.append((len(log), estimate.expected_precision, precision_at_k(estimate.top_k, judge)))
        if len(log) >= COMPARISONS:
            return trace
        if design.random_pairs:
            pairs = _random_pairs(judge.symbols, design.batch, design_rng)
        else:
            pairs = bt.choose_pairs(judge.symbols, log, K, design.batch, seed=seed)
        log = log + judge.compare(pairs, rng)


def measure(design: Design, runs: int, processes: int) -> np.ndarray:
    """runs x batches x (comparisons, confidence, precision)."""
    with Pool(processes, initializer=_init, initargs=(design.setup,)) as pool:
        return np.array(pool.map(one_run, [(design, run) for run in range(runs)], chunksize=4))


def comparisons_for(traces: np.ndarray, goal: float) -> str:
    """Where the mean precision curve first reaches `goal`, interpolated between batches."""
    counts, precision = traces[0, :, 0], traces[:, :, 2].mean(axis=0)
    for i in range(1, len(counts)):
        if precision[i] >= goal:
            share = (goal - precision[i - 1]) / (precision[i] - precision[i - 1])
            return f"{counts[i - 1] + share * (counts[i] - counts[i - 1]):.0f}"
    return f"> {counts[-1]:.0f}"


def report(results: dict[str, np.ndarray], runs: int, seconds: float) -> str:
    header = " | ".join(f"after {n}" for n in REPORTED_AT)
    lines = [
        f"### How far comparisons go: sharp judge (slope {JUDGES['sharp']:g}), N={N_MARKETS}, "
        f"K={K}, {runs} runs per design",
        "",
        "Mean realised precision@10 after a fixed number of comparisons (no stopping rule); in "
        "brackets the mean reported confidence. Last column: comparisons at which the mean "
        f"precision reaches {GOAL}.",
        "",
        f"| design | {header} | reaches {GOAL} at |",
        "|---|" + "---:|" * (len(REPORTED_AT) + 1),
    ]
    for label, traces in results.items():
        counts = list(traces[0, :, 0])
        cells = []
        for n in REPORTED_AT:
            i = counts.index(n)
            cells.append(f"{traces[:, i, 2].mean():.3f} ({traces[:, i, 1].mean():.3f})")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {comparisons_for(traces, GOAL)} |")
    lines += ["", f"_Wall time {seconds:.0f} s; `python -m bench.ranking_frontier`._", ""]
    return "\n".join(lines)


def measure_all(runs: int, processes: int) -> dict[str, np.ndarray]:
    return {d.label: measure(d, runs, processes) for d in DESIGNS}


def main() -> None:
    run_from_command_line(__doc__, RESULTS_FILE, measure_all, report)


if __name__ == "__main__":
    main()
