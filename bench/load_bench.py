"""`make bench-load`: marketrank under load (issue 11), on this machine, figures for docs/load.md.

1. llm analyses against a local OpenAI-compatible judge that takes `--latency` seconds per answer,
   one worker of 2 processes, the watchdog on its own worker with grace 4 s and 2 attempts: all
   complete, none paused, each sequence committed once; the longest queue seen, the watchdog's
   re-enqueues. Run again with three workers under three host names (`--hosts 3`).
2. 200 concurrent no-op chains (`noop:<steps>`): committed steps per second against 200 bare
   Celery chains (a task that only enqueues its successor) on the same worker and Redis.
3. Redis bytes per analysis (score, 40 real markets): the first finished one, further ones over
   the same markets, a running one; then after the refine window; Redis memory after 1,000
   finished analyses.

    python -m bench.load_bench [--analyses 16] [--latency 5] [--chains 200] [--chain-steps 20]
                               [--finished 1000] [--parts llm,hosts,noop,storage]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from analysis.config_factory import RankingConfigFactory
from analysis.models import RankingConfig, Status
from analysis.service import Actor
from bench.limits import PerUser
from tests.helpers import QueueDispatcher
from tests.llm_load import FINAL_BYTES, LOAD_TIMINGS, run_llm_load, statuses
from tests.servers import Worker
from tests.stack import Stack

# Every analysis has an owner of its own (bench/limits.py).
PER_USER = PerUser(starts_per_hour=1, active=1)
BENCH_ENV = LOAD_TIMINGS


def noop_throughput(*, chains: int, steps: int) -> dict[str, float]:
    """Committed steps per second: `chains` concurrent no-op chains of `steps` steps against as
    many bare Celery chains, one worker of 2 processes (bench.worker_app), one Redis."""
    stack = Stack(LOAD_TIMINGS, name="noop", appendonly=False)
    try:
        worker = Worker(stack.env, "noop", concurrency=2, app="bench.worker_app", log_dir=str(stack.log_dir))
        stack.workers[1] = worker
        worker.start()
        redis = stack.runtime.redis
        bare_runs = [uuid.uuid4().hex[:8] for _ in range(chains)]
        start = time.time()
        for run_id in bare_runs:
            stack.app.send_task("marketrank.bench.hop", args=(run_id, steps - 1))
        done = [f"{stack.settings.key_prefix}bench:{r}" for r in bare_runs]
        while redis.exists(*done) < chains:
            time.sleep(0.05)
        bare_s = max(float(redis.get(k)) for k in done) - start
        config = RankingConfig(
            markets=["BTC/USDT", "ETH/USDT"],
            timeframe="1h",
            strategy=f"noop:{steps - 1}",
            top_k=1,
            target_confidence=0.8,
        )
        start = time.time()
        ids = [stack.service.start(config, Actor(f"noop-{i}")).id for i in range(chains)]
        while not all(s in FINAL_BYTES for s in statuses(stack.runtime, ids)):
            time.sleep(0.05)  # as cheap a poll as the bare chains' (one pipeline)
        gists = [stack.runtime.store.load(i) for i in ids]
        ours_s = max(stack.runtime.store.history(i)[-1].finished_at for i in ids) - start
        assert all(g.status == Status.COMPLETED for g in gists)
        total = chains * steps
        return {
            "bare_steps_per_s": total / bare_s,
            "ours_steps_per_s": total / ours_s,
            "ratio": bare_s / ours_s,
            "bare_s": bare_s,
            "ours_s": ours_s,
            "steps": total,
        }
    finally:
        stack.close()


def storage_figures(*, finished: int, further: int = 20) -> dict[str, float]:
    """Redis bytes per analysis, steps run in this process (no broker traffic in the figures)."""
    stack = Stack({**LOAD_TIMINGS, "EVENTS_MAXLEN": "10000"}, name="storage", appendonly=False)
    try:
        rt, redis = stack.runtime, stack.runtime.redis
        queue = QueueDispatcher()
        from analysis.service import AnalysisService

        service = AnalysisService(rt.store, queue)
        from analysis.markets.registry import provider_from_spec

        source = provider_from_spec(f"csv:{stack.settings.shared_data_dir}")
        factory = RankingConfigFactory(stack.settings, source)
        config = factory.create_ranking_config(markets=40, top_k=10)

        def used() -> int:
            return int(redis.info("memory")["used_memory"])

        def finish(n: int, cfg: RankingConfig, prefix: str) -> list[str]:
            ids = []
            for i in range(n):
                ids.append(service.start(cfg, Actor(f"{prefix}-{i}")).id)
                queue.drain(rt)
            return ids

        base = used()
        first = finish(1, config, "first")
        after_first = used()
        finish(further, config, "further")
        after_further = used()
        # running: INIT and one step committed, the rest not yet run
        running_before = used()
        for i in range(further):
            service.start(config, Actor(f"running-{i}"))
            queue.drain(rt, limit=2)
            queue.queue.clear()
        running_after = used()
        # the refine window passes: completed analyses keep gist, history and result only
        rt.store.sweep(rt.store.live_ids(), now=time.time() + stack.settings.refine_window_s + 1)
        after_window = used()
        small = RankingConfig(
            markets=["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"],
            timeframe="1h",
            strategy="noop:3",
            top_k=2,
            target_confidence=0.8,
            data_source="demo",
        )
        before_many = used()
        finish(finished, small, "many")
        after_many = used()
        assert rt.store.load(first[0]).status == Status.COMPLETED
        return {
            "first_bytes": after_first - base,
            "further_bytes": (after_further - after_first) / further,
            "running_bytes": (running_after - running_before) / further,
            "after_window_bytes_per": (after_window - base) / (2 * further + 1),
            "many_finished": finished,
            "many_bytes": after_many - before_many,
            "used_memory_end": after_many,
            "markets": len(config.markets),
        }
    finally:
        stack.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyses", type=int, default=16)
    parser.add_argument("--latency", type=float, default=5.0)
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--chain-steps", type=int, default=20)
    parser.add_argument("--finished", type=int, default=1000)
    parser.add_argument("--parts", default="llm,hosts,noop,storage")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if "llm" in parts:
        r = run_llm_load(analyses=args.analyses, latency_s=args.latency)
        print(
            f"llm load: {r.analyses} analyses, judge {args.latency:g} s per answer, 1 worker x 2 "
            f"processes, watchdog grace 4 s, 2 attempts: {r.completed} completed, "
            f"{len(r.paused)} paused {r.paused}, {r.steps} steps committed, chains clean: "
            f"{r.clean_chains}; {r.wall_s:.0f} s; longest queue {r.longest_queue} messages; "
            f"watchdog re-enqueues {r.watchdog_kicks}, passes that found a step waiting in the "
            f"broker and left it alone {r.watchdog_queued_passes}",
            flush=True,
        )
    if "hosts" in parts:
        r = run_llm_load(analyses=args.analyses, latency_s=args.latency, hosts=3, concurrency=1)
        print(
            f"three hosts: {r.analyses} analyses on workers {r.hosts} (1 process each): "
            f"{r.completed} completed, {len(r.paused)} paused, chains clean: {r.clean_chains}; "
            f"{r.wall_s:.0f} s; longest queue {r.longest_queue}; watchdog re-enqueues "
            f"{r.watchdog_kicks}",
            flush=True,
        )
    if "noop" in parts:
        t = noop_throughput(chains=args.chains, steps=args.chain_steps)
        print(
            f"noop chains: {args.chains} concurrent chains of {args.chain_steps} steps "
            f"({t['steps']} steps): bare Celery {t['bare_steps_per_s']:.0f} steps/s "
            f"({t['bare_s']:.1f} s), marketrank {t['ours_steps_per_s']:.0f} steps/s "
            f"({t['ours_s']:.1f} s); ratio {t['ratio']:.2f} (target >= 0.7)",
            flush=True,
        )
    if "storage" in parts:
        s = storage_figures(finished=args.finished)
        print(
            f"storage (score, {s['markets']} real markets): first finished analysis "
            f"{s['first_bytes'] / 1024:.0f} kB, each further one over the same markets "
            f"{s['further_bytes'] / 1024:.0f} kB, each running one {s['running_bytes'] / 1024:.0f} kB; "
            f"after the refine window {s['after_window_bytes_per'] / 1024:.1f} kB per analysis; "
            f"{s['many_finished']} finished small analyses (4 markets, noop:3) add "
            f"{s['many_bytes'] / 2**20:.1f} MiB ({s['many_bytes'] / s['many_finished'] / 1024:.1f} kB "
            f"each); Redis used_memory at the end {s['used_memory_end'] / 2**20:.1f} MiB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
