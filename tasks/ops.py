"""Admin queries that need the broker: how much work waits, which workers answer.

Blocking calls (a Redis round trip, a broadcast ping that waits `timeout` seconds); the bot runs
them in a thread.
"""

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

import redis
from celery import Celery

from analysis.db.connect import broker_client
from tasks.celery_app import STEP_QUEUE, WATCHDOG_QUEUE
from tasks.dispatcher import STEP_HEADER

# The kombu Redis transport keeps messages delivered to a worker but not yet acknowledged here,
# with the time of delivery in the index.
UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"
# kombu's Redis lists of one queue, one per priority step (we send no priority: the first).
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_STEP_IN_MESSAGE = re.compile(rb'"' + STEP_HEADER.encode() + rb'":\s*"([^"]+)"')


@dataclass(frozen=True)
class QueueDepths:
    queued: int  # waiting in the queue
    unacked: int  # delivered to a worker, not yet acknowledged (running or prefetched)


class BrokerOps:
    def __init__(self, app: Celery):
        self.app = app

    @cached_property
    def broker(self) -> redis.Redis:
        return broker_client(self.app.conf.broker_url, self.app.conf.broker_transport_options or {})

    @property
    def queue(self) -> str:
        """The steps' queue."""
        return STEP_QUEUE

    def queue_depths(self) -> dict[str, QueueDepths]:
        """Depth of each queue marketrank uses: the steps' and the watchdog's (delivered but not
        acknowledged: all queues together, shown with the steps)."""
        with self.broker.pipeline(transaction=False) as pipe:
            pipe.llen(STEP_QUEUE)
            pipe.llen(WATCHDOG_QUEUE)
            pipe.hlen(UNACKED_KEY)
            steps, watchdog, unacked = pipe.execute()
        return {
            STEP_QUEUE: QueueDepths(int(steps), int(unacked)),
            WATCHDOG_QUEUE: QueueDepths(int(watchdog), 0),
        }

    def pending_steps(self, delivered_within_s: float, now: float | None = None) -> dict[str, list[str]]:
        """The steps the broker still holds, by analysis id, each 'chain:seq': every message
        waiting in the steps' queue, and those delivered to a worker within `delivered_within_s`
        and not yet acknowledged (a worker is about to take the lease). A message delivered
        longer ago whose step holds no lease belongs to a worker that died: it is not pending
        (the broker would give it back only after the visibility timeout)."""
        now = time.time() if now is None else now
        with self.broker.pipeline(transaction=False) as pipe:
            for suffix in PRIORITY_SUFFIXES:
                pipe.lrange(STEP_QUEUE + suffix, 0, -1)
            pipe.zrangebyscore(UNACKED_INDEX_KEY, now - delivered_within_s, "+inf")
            *lists, recent = pipe.execute()
        messages = [m for rows in lists for m in rows]
        if recent:
            messages += [m for m in self.broker.hmget(UNACKED_KEY, recent) if m]
        pending: dict[str, list[str]] = defaultdict(list)
        for message in messages:
            match = _STEP_IN_MESSAGE.search(message)
            if match:
                analysis_id, step = match.group(1).decode().split(":", 1)
                pending[analysis_id].append(step)
        return pending

    def pending_steps_within(self, delivered_within_s: float):
        """`pending_steps` as the service and the watchdog take it: a call without arguments."""
        return lambda: self.pending_steps(delivered_within_s)

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

    def consumers(self, timeout: float = 1.0) -> dict[str, list[str]]:
        """The workers that answered within `timeout` seconds, each with the queues it consumes
        (a worker answers a ping whatever it consumes: the watchdog's own worker runs no step)."""
        replies = self.app.control.inspect(timeout=timeout).active_queues() or {}
        return {name: sorted(q["name"] for q in queues or []) for name, queues in sorted(replies.items())}


def default_ops() -> BrokerOps:
    from tasks.celery_app import app

    return BrokerOps(app)
