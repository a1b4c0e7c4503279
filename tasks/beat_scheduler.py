"""Beat's scheduler: celery-redbeat's, with a stop that does not wait for a Redis that is gone."""

from __future__ import annotations

import logging

import redis
from redbeat import RedBeatScheduler
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


class RedBeatStopQuickly(RedBeatScheduler):
    def close(self) -> None:
        # Releasing the lock at the stop is a courtesy: it expires by itself after
        # redbeat_lock_timeout. When Redis stops together with beat (a launcher killed outright
        # signals every child at once), the client's retries, meant to ride out a Redis restart,
        # would hold beat up for a minute: one try, then go.
        lock = getattr(self, "lock", None)  # redbeat's redis Lock, once beat holds it
        if lock is not None:
            lock.redis.set_retry(Retry(NoBackoff(), 0))
        try:
            super().close()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("beat: the lock was not released (%s); it expires by itself", exc)
            self.lock = None
