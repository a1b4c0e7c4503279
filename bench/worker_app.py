"""The Celery app of benchmark workers (`celery -A bench.worker_app worker`): the test workers' app
(doubles registered) plus the benchmark tasks. The production app never includes them."""

import bench.bench_tasks  # noqa: F401  (registers marketrank.bench.hop)
from tests.worker_app import app

__all__ = ["app"]
