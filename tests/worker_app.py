"""The Celery app of test workers (`celery -A tests.worker_app worker`): the production app with
the test doubles registered (the `noop:<steps>` strategy, the `faulty:` data source)."""

from tasks.celery_app import app
from tests.doubles import register

register()

__all__ = ["app"]
