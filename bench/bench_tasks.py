"""The `make bench` baseline: a bare Celery task that only enqueues its successor. Registered
only in benchmark workers (bench/worker_app.py), never in the production app."""

import time

from tasks.celery_app import app
from tasks.runtime import get_runtime


@app.task(name="marketrank.bench.hop", bind=True)
def bench_hop(self, run_id: str, left: int) -> None:
    if left > 0:
        bench_hop.apply_async(args=(run_id, left - 1), argsrepr=f"run={run_id} left={left - 1}")
    else:
        get_runtime().redis.set(f"{get_runtime().keys.prefix}bench:{run_id}", time.time(), ex=3600)
