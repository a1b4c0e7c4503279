"""`make bench` (metrics): the step protocol's cost with the Prometheus step counters on against
off, in one run: the same Redis, rounds alternating between a worker with METRICS_STEP_COUNTERS
true and one with false (prefork, concurrency 1, started before each round), chains of 500
no-op steps as in bench/steps_bench.py; medians over rounds. Goal: on <= 5% more than off.
Then the same steps in this process (begin, work, commit, count: no Celery), alternating on and
off, which isolates the counters' own cost from the broker's and the machine's noise.
Writes bench/results/metrics.md; docs/benchmarks.md quotes it."""

import os
import statistics
import sys
from pathlib import Path

from bench.limits import PerUser
from bench.steps_bench import STEPS, protocol_chain

ROUNDS = 4
# bench/limits.py: each in-process chain has an owner of its own, as in bench/steps_bench.py.
PER_USER = PerUser(starts_per_hour=1, active=1)
BENCH_ENV: dict[str, str] = {}
RESULTS = Path(__file__).parent / "results" / "metrics.md"


def in_process_ms(runtime, on: bool, steps: int = 1000) -> float:
    """ms per step of a no-op chain run here (run_step: begin, work, commit, count), counters on
    or off."""
    import time

    from analysis.engine.runtime import Runtime
    from analysis.service import Actor, AnalysisService
    from tests.doubles import register
    from tests.helpers import QueueDispatcher, noop_config

    register()
    local = Runtime(runtime.settings.model_copy(update={"metrics_step_counters": on}))
    queue = QueueDispatcher()
    AnalysisService(local.store, queue).start(noop_config(steps), Actor(f"bench-{on}-{time.time()}"))
    start = time.perf_counter()
    queue.drain(local)
    return 1000 * (time.perf_counter() - start) / (steps + 1)


def main() -> int:
    from tests.servers import RedisServer, Worker

    server = RedisServer().start()
    os.environ["REDIS_URL"] = server.url
    try:
        from analysis.engine.runtime import Runtime
        from analysis.service import AnalysisService
        from analysis.settings import get_settings
        from tasks.dispatcher import CeleryDispatcher

        get_settings.cache_clear()
        runtime = Runtime(get_settings())
        service = AnalysisService(runtime.store, CeleryDispatcher())
        per_step: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(ROUNDS * 2 + 1):
            on = round_ % 2 == 1  # round 0 is a warm-up with counters off, not counted
            env = {**os.environ, "METRICS_STEP_COUNTERS": str(on).lower()}
            worker = Worker(env, f"metrics-{round_}", concurrency=1, app="bench.worker_app").start()
            try:
                total, _ = protocol_chain(runtime, service)
            finally:
                worker.stop()
            if round_:
                per_step[on].append(total / STEPS)
        counted = int(runtime.redis.hget(runtime.keys.metrics(), "steps_committed") or 0)
        in_process: dict[bool, list[float]] = {False: [], True: []}
        for flag in (False, True) * 3:
            in_process[flag].append(in_process_ms(runtime, flag))
    finally:
        server.cleanup()
    off_ms, on_ms = (1000 * statistics.median(per_step[flag]) for flag in (False, True))
    local_off, local_on = (statistics.median(in_process[flag]) for flag in (False, True))
    rows = [
        ("no-op step, counters off (METRICS_STEP_COUNTERS=false), mean ms/step", f"{off_ms:.2f}", ""),
        ("no-op step, counters on, mean ms/step", f"{on_ms:.2f}", ""),
        ("overhead of the counters", f"{100 * (on_ms / off_ms - 1):+.1f}%", "≤ +5%"),
        ("steps counted by the 'on' rounds (must be their steps)", str(counted), str(ROUNDS * STEPS)),
        ("in process (no Celery), counters off, ms/step", f"{local_off:.3f}", ""),
        ("in process (no Celery), counters on, ms/step", f"{local_on:.3f}", ""),
        ("in process, overhead of the counters", f"{100 * (local_on / local_off - 1):+.1f}%", ""),
    ]
    table = "| measure | value | target |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )
    print(f"Prometheus step counters: {STEPS}-step chains, {ROUNDS} rounds each way, medians\n\n{table}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
