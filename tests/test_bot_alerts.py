"""Admins are told, once per cause: an analysis given up as stuck, health turning warning, and
its recovery. A real bot (PTB over HTTP against the Bot API emulator), real Redis, real workers."""

import os
import time

import pytest

from analysis.engine.runtime import Runtime
from analysis.engine.step_stats import record_step
from analysis.service import AnalysisService
from analysis.settings import Settings
from tests.conftest import wait_until
from tests.helpers import QueueDispatcher, noop_config
from tests.test_bot import People, RunningBot, api, ask, bot_settings  # noqa: F401 (api: a fixture)

pytestmark = pytest.mark.usefixtures("worker")
ALERTS_DB = 9  # a database of its own: health here is only what this test makes it


def bot_texts(api, chat_id: int) -> list[str]:
    return [m.text for m in api.messages(chat_id, from_bot=True)]


@pytest.fixture
def watchdog_worker(worker_log_dir):
    """The Procfile's `watchdog` worker beside the session's step worker: without it health warns
    that lost steps are not recovered (#19 item 4), and this test's stack is otherwise complete."""
    from tests.servers import Worker

    watchdog = Worker(
        dict(os.environ),
        "alerts-watchdog",
        concurrency=1,
        log_dir=worker_log_dir,
        queues="marketrank.watchdog",
    ).start()
    yield watchdog
    watchdog.stop()


@pytest.mark.slow
def test_admins_get_one_alert_per_cause_for_stuck_warning_and_recovery(api, redis_url, watchdog_worker):
    people = People()
    url = redis_url.rsplit("/", 1)[0] + f"/{ALERTS_DB}"
    settings = bot_settings(api, people, redis_url=url, health_check_interval_s=0.3, alert_throttle_s=3600)
    runtime = Runtime(Settings(redis_url=url))
    runtime.redis.flushdb()
    with RunningBot(api, settings) as bot:
        readings = HealthReadings(bot)
        ask(api, people.admin, "/help")  # the admin has a chat with the bot
        ask(api, people.trader, "/help")
        readings.wait(3)  # a few healthy readings: nothing to tell
        assert not [t for t in bot_texts(api, people.admin) if t.startswith("marketrank health")]

        record_step(runtime.redis, runtime.keys, "judge", now=time.time())
        warning = wait_until(
            lambda: [t for t in bot_texts(api, people.admin) if t.startswith("marketrank health: warning")],
            timeout=20,
            message="the warning alert",
        )
        assert "1 steps failed on the LLM judge" in warning[0]
        record_step(runtime.redis, runtime.keys, "judge", now=time.time())  # same cause, still warning
        readings.wait(3)
        runtime.redis.delete(*runtime.redis.keys(f"{runtime.keys.prefix}steps:*"))
        wait_until(
            lambda: [
                t for t in bot_texts(api, people.admin) if t == "marketrank health: recovered (was warning)."
            ],
            timeout=20,
            message="the recovery alert",
        )

        # The watchdog gives an analysis up: the `stuck` event reaches the admins, once.
        service = AnalysisService(runtime.store, QueueDispatcher())
        stuck_id = give_up(runtime, service)
        told = wait_until(
            lambda: [t for t in bot_texts(api, people.admin) if t.startswith(f"Analysis {stuck_id}")],
            timeout=20,
            message="the stuck alert",
        )
        assert "given up as stuck (stuck: no progress after" in told[0]
        assert f"/force_resume {stuck_id}" in told[0]
        fields = runtime.redis.xrange(runtime.keys.events())[-1][1]
        runtime.redis.xadd(runtime.keys.events(), fields)  # the same event once more
        # Events are handled in order: once a later analysis's alert is out, so is the repeat's.
        later_id = give_up(runtime, service)
        wait_until(
            lambda: [t for t in bot_texts(api, people.admin) if t.startswith(f"Analysis {later_id}")],
            timeout=20,
            message="the later stuck alert",
        )
        admin_texts = bot_texts(api, people.admin)
    assert len([t for t in admin_texts if t.startswith(f"Analysis {stuck_id}")]) == 1
    assert len([t for t in admin_texts if t.startswith("marketrank health: warning")]) >= 1
    assert len([t for t in admin_texts if "1 steps failed on the LLM judge" in t]) == 1
    assert len([t for t in admin_texts if t.startswith("marketrank health: recovered")]) == 1
    assert not [t for t in bot_texts(api, people.trader) if t.startswith(("marketrank health", "Analysis"))]


class HealthReadings:
    """Counts the bot's health readings for alerts: the clock a "nothing was told" check waits on."""

    def __init__(self, bot: RunningBot):
        alerts = bot.application.bot_data["services"].alerts
        read, self.count = alerts.read_health, 0

        def counted():
            self.count += 1
            return read()

        alerts.read_health = counted

    def wait(self, n: int) -> None:
        """Until n more readings have been handled (one loop reads, then tells): reading n+1 began."""
        target = self.count + n + 1
        wait_until(lambda: self.count >= target, timeout=20, message=f"{n} more health readings")


def give_up(runtime: Runtime, service: AnalysisService) -> str:
    """An analysis whose INIT message was lost, kicked by watchdog passes until it gives up."""
    from analysis.service import Actor
    from tasks.watchdog import watchdog_pass

    gist = service.start(noop_config(3), Actor("alerts-test"))
    now, grace = gist.last_progress_at, runtime.settings.watchdog_grace_s
    for _ in range(runtime.settings.watchdog_max_attempts + 1):
        now += grace + 1
        watchdog_pass(now, rt=runtime, dispatcher=QueueDispatcher())
    assert service.get(gist.id, Actor("alerts-test", is_admin=True)).reason.startswith("stuck")
    return gist.id


def test_admins_are_told_redis_is_full_in_its_own_words_not_the_stuck_ones(api):
    from analysis.service import Actor
    from tests.servers import RedisServer
    from tests.test_storage import fill

    people, server = People(), RedisServer(maxmemory="4mb").start()
    try:
        runtime = Runtime(Settings(redis_url=server.url))
        with RunningBot(api, bot_settings(api, people, redis_url=server.url)):
            ask(api, people.admin, "/help")  # the admin has a chat with the bot
            queue = QueueDispatcher()
            gist = AnalysisService(runtime.store, queue).start(noop_config(3), Actor("alerts-test"))
            assert queue.drain(runtime, limit=1) == ["continue"]
            fill(runtime.redis)
            assert queue.drain(runtime, limit=1) == ["paused"]  # the next step found no room
            # Told while Redis is still full: the alert's own bookkeeping must not need room.
            told = wait_until(
                lambda: [t for t in bot_texts(api, people.admin) if gist.id in t],
                timeout=20,
                message="the storage-full alert",
            )
    finally:
        server.cleanup()
    assert len(told) == 1
    assert "stuck" not in told[0]
    assert told[0].startswith(f"Analysis {gist.id} paused: Redis is full")
    assert "maxmemory" in told[0] and f"/force_resume {gist.id}" in told[0] and "Resume" in told[0]


def test_at_redis_memory_limit_the_alert_book_still_throttles_and_tells_a_level_change():
    import asyncio

    import redis.asyncio as aioredis

    from analysis.health import Health, Reason
    from bot.alert_book import AlertBook
    from tests.servers import RedisServer
    from tests.test_storage import fill

    server = RedisServer(maxmemory="4mb").start()
    try:
        runtime = Runtime(Settings(redis_url=server.url))
        fill(runtime.redis)
        critical = Health(
            "critical", [Reason("critical", "redis_memory", "Redis uses 100 % of its maxmemory")]
        )

        async def tell() -> tuple:
            client = aioredis.Redis.from_url(server.url, decode_responses=True)
            book = AlertBook(client, runtime.keys, throttle_s=60)
            try:
                return (
                    await book.first("storage_full:a"),
                    await book.first("storage_full:a"),
                    await book.health_alert(critical),
                    await book.health_alert(critical),
                )
            finally:
                await client.aclose()

        first, again, change, same = asyncio.run(tell())
    finally:
        server.cleanup()
    assert (first, again) == (True, False)
    assert change is not None and change[0] == "health:critical:redis_memory"
    assert same is None
