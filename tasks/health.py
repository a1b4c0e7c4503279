"""Health as the fronts ask for it: the broker's figures (queue, workers) measured here with
Celery, the rest read and judged by analysis/health.py."""

import time

import redis

from analysis.engine.runtime import Runtime
from analysis.errors import first_line
from analysis.health import BrokerFigures, Figures, Health, Thresholds, assess, redis_figures, unreachable
from analysis.redaction import url_without_password
from analysis.service import AnalysisService
from tasks.celery_app import STEP_QUEUE, WATCHDOG_QUEUE
from tasks.ops import BrokerOps


def check_health(
    rt: Runtime,
    service: AnalysisService,
    ops: BrokerOps,
    *,
    ping_timeout: float = 1.0,
    now: float | None = None,
) -> Health:
    now = time.time() if now is None else now
    try:
        depths = ops.queue_depths()[ops.queue]
        consumers = ops.consumers(timeout=ping_timeout)
        broker = BrokerFigures(
            queued=depths.queued,
            unacked=depths.unacked,
            oldest_age_s=ops.oldest_age_s(now),
            workers=list(consumers),
            step_workers=[w for w, qs in consumers.items() if STEP_QUEUE in qs],
            watchdog_workers=[w for w, qs in consumers.items() if WATCHDOG_QUEUE in qs],
        )
        stuck = [gist.id for gist in service.stuck()]
        figures = Figures(stuck=stuck, broker=broker, **redis_figures(rt.redis, rt.keys, now=now))
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        return unreachable(url_without_password(rt.settings.redis_url), first_line(exc))
    return assess(figures, Thresholds.of(rt.settings))
