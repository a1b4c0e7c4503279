"""Admin queries that need the broker: how much work waits, which workers answer.

Blocking calls (a Redis round trip, a broadcast ping that waits `timeout` seconds); the bot runs
them in a thread.
"""

import json
import time
from dataclasses import dataclass
from functools import cached_property

import redis
from celery import Celery

# The kombu Redis transport keeps messages delivered to a worker but not yet acknowledged here.
UNACKED_KEY = "unacked"


@dataclass(frozen=True)
class QueueDepths:
    queued: int  # waiting in the queue
    unacked: int  # delivered to a worker, not yet acknowledged (running or prefetched)


class BrokerOps:
    def __init__(self, app: Celery):
        self.app = app

    @cached_property
    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.app.conf.broker_url)

    @property
    def queue(self) -> str:
        return self.app.conf.task_default_queue

    def queue_depths(self) -> dict[str, QueueDepths]:
        """Depth of each queue marketrank uses (one today: `marketrank`)."""
        with self.broker.pipeline(transaction=False) as pipe:
            pipe.llen(self.queue)
            pipe.hlen(UNACKED_KEY)
            queued, unacked = pipe.execute()
        return {self.queue: QueueDepths(int(queued), int(unacked))}

    def oldest_age_s(self, now: float | None = None) -> float | None:
        """How long the oldest queued step has waited (the `sent_at` header the dispatcher sets;
        kombu's Redis transport pushes on the left and pops on the right)."""
        raw = self.broker.lindex(self.queue, -1)
        if raw is None:
            return None
        try:
            sent_at = float(json.loads(raw)["headers"]["sent_at"])
        except (ValueError, KeyError, TypeError):
            return None
        return max(0.0, (time.time() if now is None else now) - sent_at)

    def workers(self, timeout: float = 1.0) -> list[str]:
        """Names of the workers that answered a ping within `timeout` seconds, sorted."""
        replies = self.app.control.ping(timeout=timeout) or []
        return sorted(name for reply in replies for name in reply)


def default_ops() -> BrokerOps:
    from tasks.celery_app import app

    return BrokerOps(app)
