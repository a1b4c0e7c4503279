"""Admin alerts over Telegram: an analysis given up as stuck (the `stuck` event the watchdog
writes) or paused because Redis is full (`storage_full`), health turning warning or critical, and its
recovery. Throttled per cause
(bot/alert_book.py); sending never blocks or breaks the rest of the bot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from html import escape

from redis.exceptions import RedisError
from telegram import Bot
from telegram.error import TelegramError

from analysis.health import Health
from bot.alert_book import ADMIN_ALERT_TEXTS, AlertBook
from bot.delivery import Delivery

logger = logging.getLogger(__name__)


class AdminAlerts:
    def __init__(
        self,
        bot: Bot,
        admin_ids: list[int],
        book: AlertBook,
        read_health: Callable[[], Health],
        interval_s: float,
        delivery: Delivery | None = None,
    ):
        self.bot, self.admin_ids, self.book = bot, list(admin_ids), book
        self.delivery = delivery  # each admin's settings for admin alerts (#24)
        self.read_health, self.interval_s = read_health, interval_s
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self.admin_ids:
            self._task = asyncio.create_task(self._watch_health(), name="health-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def analysis_event(self, kind: str, analysis_id: str, reason: str) -> None:
        """Tell admins about an event of ADMIN_ALERT_TEXTS (a stuck analysis, Redis full)."""
        await self.send(f"{kind}:{analysis_id}", ADMIN_ALERT_TEXTS[kind](analysis_id, reason))

    async def send(self, cause: str, text: str) -> None:
        try:
            if not self.admin_ids or not await self.book.first(cause):
                return
        except RedisError as exc:
            logger.warning("alert %s not sent: %s", cause, exc)
            return
        logger.info("alert to admins: %s", cause)
        try:
            await self.book.count_sent()
        except RedisError as exc:
            logger.warning("alert %s not counted: %s", cause, exc)
        for admin_id in self.admin_ids:
            try:
                if self.delivery is not None:
                    await self.delivery.admin_alert(admin_id, escape(text), cause)
                else:
                    await self.bot.send_message(admin_id, escape(text))
            except (TelegramError, RedisError) as exc:  # e.g. the admin never opened a chat with the bot
                logger.warning("alert %s not delivered to admin %s: %s", cause, admin_id, exc)

    async def _watch_health(self) -> None:
        while True:
            # First wait: at start-up (e.g. `make run`) the workers may not answer yet.
            await asyncio.sleep(self.interval_s)
            try:
                health = await asyncio.to_thread(self.read_health)
                change = await self.book.health_alert(health)
                if change is not None:
                    await self.send(*change)
            except Exception:  # a reading that fails is tried again at the next interval
                logger.warning("health check for alerts failed", exc_info=True)
