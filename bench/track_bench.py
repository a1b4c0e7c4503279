"""The track record's figures (issue #21): the replay's wall time, a pick record's size, Redis per
1,000 records, and how far the replay's scores are from a live analysis's window.

1. `marketrank backtest --strategy score --timeframe 1h --markets 40` over the shared 40 markets x
   2,160 1h candles, a decision every hour, horizons 1/4/24: the same calls as the CLI
   (make_plan, run_backtest, the table and the --json document), timed by phase. Wall time AND
   the process's CPU time, since the machine may be shared.
2. A pick record's JSON size (40 and 30 markets), and the Redis memory 1,000 of them take as one
   string each in a private redis-server (MEMORY USAGE; the live store's layout is track-live's,
   this is the record's own share).
3. Live analyses compute indicators on their last WINDOW_CANDLES candles, the replay on the whole
   series (module docstring of analysis/track/replay.py): for every WINDOW_EVERY-th decision, the
   largest score difference and whether any ranking differs.

`python -m bench.track_bench` (SHARED_DATA_DIR points at the data); writes bench/results/track.md.
"""

import json
import os
import sys
import time
from pathlib import Path

import redis

from analysis.markets.csv_dir import CsvDirProvider
from analysis.markets.indicators import indicator_frame
from analysis.ranking.strategies.score import composite_scores
from analysis.settings import get_settings
from analysis.track.backtest import make_plan, run_backtest
from analysis.track.report import evaluation_json, table

RESULTS = Path(__file__).parent / "results" / "track.md"
PER_USER = None  # bench/limits.py: the replay reads candle files and starts no analysis
BENCH_ENV: dict[str, str] = {}
WINDOW_EVERY = int(os.environ.get("BENCH_WINDOW_EVERY", 48))
LIMIT_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def run(self, name: str, call):
        wall, cpu = time.perf_counter(), time.process_time()
        value = call()
        self.rows.append((name, time.perf_counter() - wall, time.process_time() - cpu))
        return value


def replay_timing(settings, provider):
    clock = Clock()
    plan = make_plan(
        settings,
        provider,
        strategy="score",
        timeframe="1h",
        markets=40,
        symbols=None,
        start=None,
        end=None,
        every=None,
        top_k=10,
        horizons="1,4,24",
    )
    done = clock.run("replay + evaluation (run_backtest)", lambda: run_backtest(plan, provider))
    clock.run("table", lambda: table(done.evaluation, plan.horizons, plan.k, plan.timeframe))
    text = clock.run("--json document", lambda: json.dumps(evaluation_json(done.evaluation, plan.horizons)))
    return clock, done, plan, len(text)


def record_sizes(done) -> dict[str, float]:
    records = done.evaluation.records
    sizes = [len(r.to_json().encode()) for r in records]
    from dataclasses import replace

    thirty = [len(replace(r, universe=r.universe[:30], k=10).to_json().encode()) for r in records[:200]]
    return {"mean_40": sum(sizes) / len(sizes), "max_40": max(sizes), "mean_30": sum(thirty) / len(thirty)}


def redis_per_thousand(done) -> tuple[int, int]:
    from tests.servers import RedisServer

    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url)
        before = int(client.info("memory")["used_memory"])
        for i, record in enumerate(done.evaluation.records[:1000]):
            client.set(f"mr:track:record:{i:06d}", record.to_json())
        after = int(client.info("memory")["used_memory"])
        usage = sum(int(client.memory_usage(f"mr:track:record:{i:06d}") or 0) for i in range(1000))
        return after - before, usage
    finally:
        server.cleanup()


def window_drift(done, provider, settings) -> tuple[int, float, int]:
    """(decisions checked, largest |replay score - live window score|, decisions ranked differently)."""
    frames = {s: provider.candles(s, "1h", 100_000) for s in provider.list_markets("1h")}
    opens = {s: f.index.as_unit("ms").asi8 for s, f in frames.items()}
    checked, worst, differ = 0, 0.0, 0
    for record in done.evaluation.records[::WINDOW_EVERY]:
        live = {}
        for market in record.universe:
            row = int((opens[market.symbol] + 3_600_000 <= record.t).sum())
            window = frames[market.symbol].iloc[max(0, row - settings.window_candles) : row]
            live[market.symbol] = composite_scores(indicator_frame(window), 1, "rank")[0]
            worst = max(worst, abs(live[market.symbol] - market.score))
        order = sorted(live, key=lambda s: (-live[s], s))
        differ += order != record.symbols()
        checked += 1
    return checked, worst, differ


def main() -> None:
    settings = get_settings()
    folder = settings.shared_data_dir
    if not (folder / "BTC_USDT-1h.csv").is_file():
        sys.exit(f"no shared data at {folder}: set SHARED_DATA_DIR")
    provider = CsvDirProvider(folder)
    clock, done, plan, json_bytes = replay_timing(settings, provider)
    sizes = record_sizes(done)
    redis_delta, usage = redis_per_thousand(done)
    checked, worst, differ = window_drift(done, provider, settings)
    total_wall = sum(r[1] for r in clock.rows)
    total_cpu = sum(r[2] for r in clock.rows)
    lines = [
        "# Track record figures (bench/track_bench.py)",
        "",
        f"Replay of `score` on the shared 40 markets x 2,160 1h candles: {len(done.evaluation.records)} "
        f"decisions (every hour), horizons 1/4/24, top {plan.k}, baselines and the random-K interval "
        "included.",
        "",
        "| phase | wall s | CPU s |",
        "|---|---:|---:|",
        *[f"| {name} | {wall:.2f} | {cpu:.2f} |" for name, wall, cpu in clock.rows],
        f"| **total** | **{total_wall:.2f}** | **{total_cpu:.2f}** |",
        "",
        f"Limit {LIMIT_S:.0f} s wall: {'met' if total_wall <= LIMIT_S else 'NOT met'}. "
        f"The --json document is {json_bytes / 1e6:.1f} MB.",
        "",
        "| pick record | bytes |",
        "|---|---:|",
        f"| JSON, 40 markets (mean) | {sizes['mean_40']:.0f} |",
        f"| JSON, 40 markets (max) | {sizes['max_40']} |",
        f"| JSON, 30 markets (mean) | {sizes['mean_30']:.0f} |",
        f"| Redis, 1,000 records of 40 markets as one string each (used_memory delta) | {redis_delta:,} |",
        f"| Redis, same, sum of MEMORY USAGE | {usage:,} |",
        "",
        f"Replay vs a live analysis's {settings.window_candles}-candle window, every {WINDOW_EVERY}th "
        f"decision ({checked} decisions x 40 markets): largest score difference {worst:.1e}; "
        f"decisions whose ranking differs: {differ}.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
