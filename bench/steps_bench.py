"""`make bench` (part 1): the step protocol's own cost, and indicator snapshot speed.

1. A chain of 500 no-op steps (`noop:<steps>` strategy of tests/doubles: begin + commit + enqueue +
dispatch, nothing else)
   against a bare Celery task that only enqueues its successor, on the same worker (prefork,
   concurrency 1) and the same Redis, 5 interleaved rounds; the figures are medians over rounds.
2. Indicator snapshots (RSI, MACD, Bollinger %B, ATR, ADX, EMA trend, volume change) for
   200 markets x 1000 candles.
"""

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from bench.limits import PerUser

STEPS = 500
RUNS = 5
RESULTS = Path(__file__).parent / "results" / "steps.md"
# Each chain has an owner of its own (bench/limits.py).
PER_USER = PerUser(starts_per_hour=1, active=1)
BENCH_ENV: dict[str, str] = {}


def start_stack():
    from tests.servers import RedisServer, Worker

    server = RedisServer().start()
    os.environ["REDIS_URL"] = server.url
    try:
        worker = Worker(dict(os.environ), "bench", concurrency=1, app="bench.worker_app").start()
    except BaseException:
        server.cleanup()
        raise
    return server, worker


def bare_chain_seconds(runtime) -> float:
    from bench.bench_tasks import bench_hop

    run_id = uuid.uuid4().hex[:8]
    done_key = f"{runtime.keys.prefix}bench:{run_id}"
    start = time.time()
    bench_hop.apply_async(args=(run_id, STEPS - 1))
    while not runtime.redis.exists(done_key):
        time.sleep(0.002)
    return float(runtime.redis.get(done_key)) - start


def protocol_chain(runtime, service) -> tuple[float, float]:
    """(seconds for the chain, median seconds between consecutive step starts)."""
    from analysis.models import RankingConfig, Status
    from analysis.service import Actor

    config = RankingConfig(
        markets=["BTC/USDT", "ETH/USDT"],
        timeframe="1h",
        strategy=f"noop:{STEPS - 1}",
        top_k=1,
        target_confidence=0.8,
    )  # + INIT = 500
    start = time.time()
    gist = service.start(config, Actor(f"bench-{uuid.uuid4().hex[:6]}"))
    while runtime.store.load(gist.id).status != Status.COMPLETED:
        time.sleep(0.005)
    history = runtime.store.history(gist.id)
    assert [e.seq for e in history] == list(range(STEPS)), "chain broke during the benchmark"
    gaps = [b.started_at - a.started_at for a, b in zip(history, history[1:])]
    return history[-1].finished_at - start, statistics.median(gaps)


def indicator_seconds() -> float:
    from analysis.markets.demo import _demo_series
    from analysis.markets.indicators import indicator_frame, snapshot_at

    frames = [_demo_series(f"SYN{i}/USDT", "1h").iloc[-1000:] for i in range(200)]
    start = time.perf_counter()
    for frame in frames:
        snapshot_at(indicator_frame(frame))
    return time.perf_counter() - start


def main() -> int:
    server, worker = start_stack()
    try:
        from analysis.engine.runtime import Runtime
        from analysis.service import AnalysisService
        from analysis.settings import get_settings
        from tasks.dispatcher import CeleryDispatcher

        get_settings.cache_clear()
        runtime = Runtime(get_settings())
        service = AnalysisService(runtime.store, CeleryDispatcher())
        bare_chain_seconds(runtime)  # warm-up: imports, connections
        bare, ours, ours_median = [], [], []
        for _ in range(RUNS):
            bare.append(bare_chain_seconds(runtime) / STEPS)
            total, median_gap = protocol_chain(runtime, service)
            ours.append(total / STEPS)
            ours_median.append(median_gap)
        indicators = indicator_seconds()
    finally:
        worker.stop()
        server.cleanup()
    bare_ms, ours_ms = 1000 * statistics.median(bare), 1000 * statistics.median(ours)
    median_ms = 1000 * statistics.median(ours_median)
    rows = [
        ("bare Celery hop (enqueue successor only), mean ms/step", f"{bare_ms:.2f}", ""),
        ("marketrank no-op step (begin+commit+enqueue+dispatch), mean ms/step", f"{ours_ms:.2f}", ""),
        ("marketrank no-op step, median ms/step", f"{median_ms:.2f}", "≤ 5"),
        ("ratio marketrank / bare (mean per step)", f"{ours_ms / bare_ms:.2f}", "≤ 1.5"),
        ("indicator snapshots, 200 markets x 1000 candles, s", f"{indicators:.2f}", ""),
        ("indicator snapshot per market, ms", f"{1000 * indicators / 200:.1f}", ""),
    ]
    table = "| measure | value | target |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )
    print(f"Step protocol: {STEPS}-step chains, {RUNS} runs each, medians over runs\n\n{table}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
