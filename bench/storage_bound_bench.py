"""`python -m bench.storage_bound_bench` (part of `make bench-load`): what one user can keep in
Redis with MAX_FINISHED_PER_USER (#19 item 11), measured as docs/load.md measures storage
(Redis `used_memory`, `score` analyses of 40 real markets run in this process).

Each of USERS users finishes 2 x BOUND analyses one after another, with MAX_FINISHED_PER_USER =
BOUND; Redis memory is read after every analysis. Past the bound a user's memory stops growing
(each start deletes the oldest finished one), so Redis holds at most users x (bound + active
limit + the few finished since their last start) analyses besides the shared candle blocks.
"""

import sys
import time
from pathlib import Path

from bench.limits import PerUser

USERS = 3
BOUND = 10
PER_USER = PerUser(starts_per_hour=2 * BOUND, active=1)  # bench/limits.py
BENCH_ENV = {"MAX_FINISHED_PER_USER": str(BOUND), "MAX_STARTS_PER_HOUR": str(2 * BOUND)}
RESULTS = Path(__file__).parent / "results" / "storage_bound.md"


def main() -> int:
    from analysis.config_factory import RankingConfigFactory
    from analysis.engine.runtime import Runtime
    from analysis.markets.registry import provider_from_spec
    from analysis.service import Actor, AnalysisService
    from analysis.settings import Settings
    from tests.helpers import QueueDispatcher
    from tests.servers import RedisServer

    server = RedisServer().start()
    try:
        data = Settings().shared_data_dir
        settings = Settings(
            redis_url=server.url, market_data=f"csv:{data}", **{k.lower(): v for k, v in BENCH_ENV.items()}
        )
        runtime, queue = Runtime(settings), QueueDispatcher()
        service = AnalysisService(runtime.store, queue)
        config = RankingConfigFactory(settings, provider_from_spec(f"csv:{data}")).create_ranking_config(
            markets=40, top_k=10
        )

        def used() -> int:
            return int(runtime.redis.info("memory")["used_memory"])

        def finish(actor: Actor) -> None:
            service.start(config, actor)
            queue.drain(runtime)

        began = time.time()
        finish(Actor("warm-up"))  # the candle blocks, shared by every later analysis
        base = used()
        per_user, curves = [], []
        for u in range(USERS):
            before, curve = used(), []
            for _ in range(2 * BOUND):
                finish(Actor(f"user-{u}"))
                curve.append(used() - before)
            per_user.append(curve[-1])
            curves.append(curve)
        kept = [len(runtime.store.ids_of_owner(f"user-{u}", limit=1000)) for u in range(USERS)]
        elapsed = time.time() - began
    finally:
        server.cleanup()
    growth_first = curves[0][BOUND - 1] / BOUND
    growth_past = (curves[0][-1] - curves[0][BOUND]) / (BOUND - 1)
    mean_user = sum(per_user) / USERS
    per_analysis = mean_user / (BOUND + 1)
    text = (
        f"Storage per user with MAX_FINISHED_PER_USER={BOUND}: {USERS} users each finished "
        f"{2 * BOUND} `score` analyses of 40 real markets (in-process steps, redis-server on the "
        f"same 2-CPU host, {elapsed:.0f} s). Candle blocks after the first analysis: "
        f"{base / 1024:.0f} kB, shared.\n\n"
        f"| figure | value |\n|---|---|\n"
        f"| analyses kept per user at the end | {', '.join(map(str, kept))} (bound {BOUND}, + the one "
        "finished since its start) |\n"
        f"| memory per user, first {BOUND} analyses | {growth_first / 1024:.1f} kB each |\n"
        f"| memory per user, analyses past the bound | {growth_past / 1024:.1f} kB each (the oldest "
        "is deleted) |\n"
        f"| memory per user at the end | {', '.join(f'{b / 1024:.0f} kB' for b in per_user)} |\n"
        f"| per kept analysis | {per_analysis / 1024:.1f} kB |\n"
    )
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    return 0 if max(kept) <= BOUND + 1 and growth_past < growth_first / 4 else 1


if __name__ == "__main__":
    sys.exit(main())
