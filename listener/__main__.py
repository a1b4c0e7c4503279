"""`python -m listener`: serve every feature whose port is set (EXPORT_PORT today) until SIGTERM
or SIGINT. With no feature on it says so and idles until stopped (the Procfile lists it)."""

from __future__ import annotations

import asyncio
import signal
import sys

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from analysis.db.connect import redis_client
from analysis.db.keys import Keys
from analysis.engine.store import AnalysisStore
from analysis.export import PairListReader
from analysis.logging_setup import configure_logging
from analysis.schedules.store import ScheduleStore
from analysis.service import AnalysisService
from analysis.settings import Settings, get_settings
from listener.app import Feature, plan, serve
from listener.export_routes import export_feature
from listener.metrics_routes import metrics_feature


class NoSteps:
    """The listener only reads: it never enqueues a step."""

    def enqueue_step(self, analysis_id: str, chain: str, seq: int) -> None:
        raise RuntimeError("the listener starts no step")


def metrics(client: redis.Redis, settings: Settings) -> Feature:
    """GET /metrics on METRICS_PORT (tasks/metrics.py reads the counters, the live analyses and
    the broker's queue)."""
    from tasks.metrics import exposition
    from tasks.ops import default_ops

    service, ops = AnalysisService(AnalysisStore(client, settings), NoSteps()), default_ops()
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    return metrics_feature(lambda: exposition(service, ops), token, settings.metrics_port)


async def main() -> int:
    settings = get_settings()
    # A caller is waiting: a few quick retries (about 1 s), then a one-line 503, not the workers'
    # patient reconnects (Runtime's, ~30 s).
    client = redis_client(
        settings,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
    reader = PairListReader(ScheduleStore(client, Keys(settings.key_prefix)), AnalysisStore(client, settings))
    ports = plan([export_feature(reader, settings.export_port), metrics(client, settings)])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not ports:  # idle, not gone: a Procfile runner stops every process when one exits
        print("listener: nothing to serve (EXPORT_PORT is empty); idle until stopped", file=sys.stderr)
        await stop.wait()
        return 0
    try:
        await serve(ports, settings.export_bind, settings.export_allowed_hosts, stop)
    except OSError as exc:
        print(
            f"listener: cannot listen on {settings.export_bind}:{settings.export_port} ({exc.strerror}); "
            "set EXPORT_PORT to a free port",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    configure_logging()
    sys.exit(asyncio.run(main()))
