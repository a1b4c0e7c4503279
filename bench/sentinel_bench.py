"""`python -m bench.sentinel_bench` (`make bench-sentinel`): Redis failover through Sentinel
(#23 item 3), on a primary, a replica and three sentinels on loopback (tests/sentinel_cluster.py,
its timings stated in the output).

1. RUNS times: 4 noop analyses mid-run on a real worker with beat and the watchdog, the primary
   SIGKILLed; the time to the promotion and to the next committed step, the steps committed on the
   old primary that the switch lost and were run again, and the analyses completed.
2. The cost of `WAIT 1 <ms>` after a write (what a start adds; what it would add to each commit):
   a write's round trip alone and followed by the probe and WAIT, through the Sentinel client.
"""

import statistics
import sys
import time
from pathlib import Path

from bench.limits import PerUser

RUNS = 3
WRITES = 2000
WAIT_MS = 100
RESULTS = Path(__file__).parent / "results" / "sentinel.md"
# bench/limits.py: each kill's analyses have an owner each (tests/sentinel_cluster.run_failover).
PER_USER = PerUser(starts_per_hour=1, active=1)
BENCH_ENV: dict[str, str] = {}


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return f"p50 {1000 * statistics.median(ordered):.3f} ms, p99 {1000 * p99:.3f} ms"


def wait_cost(stack) -> tuple[str, str]:
    """A write alone, and a write followed by what a start adds (analysis/db/replication.py)."""
    from analysis.db.replication import wait_for_replica

    client = stack.runtime.redis
    plain, waited = [], []
    for n in range(WRITES):
        start = time.perf_counter()
        client.set("bench:wait", n)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        client.set("bench:wait", n)
        confirmed = wait_for_replica(client, stack.runtime.keys.replication_probe(), WAIT_MS, "bench write")
        waited.append(time.perf_counter() - start)
        assert confirmed, "the replica did not acknowledge"
    return percentiles(plain), percentiles(waited)


def main() -> int:
    from tests.sentinel_cluster import DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, QUORUM, SentinelStack, run_failover
    from tests.stack import FAST_TIMINGS

    lines = [
        "# Redis failover through Sentinel (`make bench-sentinel`)",
        "",
        f"Sentinel: down-after-milliseconds {DOWN_AFTER_MS}, failover-timeout "
        f"{FAILOVER_TIMEOUT_MS}, quorum {QUORUM} of 3; protocol timings: LEASE_MS "
        f"{FAST_TIMINGS['LEASE_MS']}, WATCHDOG_GRACE_S {FAST_TIMINGS['WATCHDOG_GRACE_S']}.",
        "",
        "| run | kill -> promoted (s) | kill -> next commit (s) | steps re-run | completed |",
        "|---|---|---|---|---|",
    ]
    worst = 0.0
    for run in range(1, RUNS + 1):
        stack = SentinelStack(FAST_TIMINGS, name=f"sentinel-bench-{run}")
        try:
            stack.start_worker(1)
            stack.start_beat()
            figures, _ = run_failover(stack)
        finally:
            stack.close()
        worst = max(worst, figures.next_commit_s)
        lines.append(
            f"| {run} | {figures.promoted_s:.2f} | {figures.next_commit_s:.2f} | "
            f"{figures.reruns} | {figures.completed}/{figures.started} |"
        )
        print(lines[-1], flush=True)
    stack = SentinelStack({"REDIS_WAIT_MS": str(WAIT_MS)}, name="sentinel-wait")
    try:
        plain, waited = wait_cost(stack)
    finally:
        stack.close()
    lines += [
        "",
        f"Worst kill -> next commit: {worst:.2f} s (goal <= 30 s).",
        "",
        f"A write through the Sentinel client ({WRITES} each, loopback): {plain}; "
        f"the same write followed by a start's probe write and `WAIT 1 {WAIT_MS}` in one "
        f"round trip: {waited}.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if worst <= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
