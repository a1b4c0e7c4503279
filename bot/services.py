"""The services handlers reach: built once at start-up (post_init), kept in `bot_data`, closed at
shutdown. Handlers never build clients themselves."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Callable

import redis.asyncio as aioredis
from telegram import Bot, User
from telegram.ext import ContextTypes

from analysis.access import may_trade
from analysis.config_factory import RankingConfigFactory
from analysis.db.keys import Keys
from analysis.health import Health
from analysis.schedules.service import ScheduleService
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings
from analysis.track.service import TrackService
from analysis.user_settings import UserSettingsService
from bot.alert_book import AlertBook
from bot.alerts import AdminAlerts
from bot.card_lock import CardLock
from bot.cards import CardStore
from bot.chart_cache import ChartCache
from bot.delivery import Delivery
from bot.notifier import CardNotifier
from bot.schedule_cards import ScheduledCards
from bot.update_ledger import UpdateLedger
from wiring import BrokerOps, async_redis_client, celery_services

logger = logging.getLogger(__name__)
BOT_DATA_KEY = "services"
NOTIFIER_CONSUMER = "notifier"


class Access:
    """Who may do what: traders need ALLOWED_USER_IDS (empty = anyone), admins ADMIN_USER_IDS."""

    def __init__(self, allowed_user_ids: list[int], admin_user_ids: list[int]):
        self.allowed, self.admins = frozenset(allowed_user_ids), frozenset(admin_user_ids)

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins

    def may_trade(self, user_id: int) -> bool:
        return may_trade(self.allowed, self.admins, user_id)

    def actor(self, user: User) -> Actor:
        return Actor(str(user.id), is_admin=self.is_admin(user.id))


@dataclass
class BotServices:
    settings: Settings
    access: Access
    service: AnalysisService
    schedules: ScheduleService
    factory: RankingConfigFactory
    notifier: CardNotifier
    ops: BrokerOps
    async_redis: aioredis.Redis
    ledger: UpdateLedger
    keys: Keys
    alerts: AdminAlerts
    health: Callable[[], Health]  # the stack's health reading (blocking: run it in a thread)
    charts: ChartCache
    track: TrackService
    user_settings: UserSettingsService
    delivery: Delivery

    @classmethod
    def build(cls, settings: Settings, bot: Bot) -> BotServices:
        core = celery_services(settings)
        runtime, service, schedules, factory, ops = (
            core.runtime,
            core.service,
            core.schedules,
            core.factory,
            core.ops,
        )
        async_redis = async_redis_client(settings, decode_responses=True, health_check_interval=30)
        # One consumer group per bot (its id is the token's prefix): each bot sees every event.
        # On webhooks each instance is its own consumer of it (each event goes to one instance)
        # and takes over what a dead instance left; cards are locked across instances.
        several = settings.telegram_webhook_url is not None
        events = service.events(
            async_redis,
            group=f"bot:{bot.id}",
            consumer=consumer_name(settings),
            claim_idle_ms=int(settings.events_claim_idle_s * 1000) if several else None,
        )
        cards = CardStore(async_redis, runtime.keys, settings.gist_ttl_s)
        user_settings = core.user_settings()
        delivery = Delivery(
            bot, user_settings, cards, interval_s=settings.quiet_check_interval_s, schedules=schedules
        )
        alerts = AdminAlerts(
            bot,
            settings.admin_user_ids,
            AlertBook(async_redis, runtime.keys, settings.alert_throttle_s),
            core.health,
            interval_s=settings.health_check_interval_s,
            delivery=delivery,
        )
        track = core.track()
        charts = ChartCache(
            runtime.redis,
            runtime.keys,
            ttl_s=settings.chart_cache_ttl_s,
            presses_per_minute=settings.chart_presses_per_minute,
        )
        notifier = CardNotifier(
            bot,
            service,
            cards,
            events,
            interval_s=settings.card_edit_interval_s,
            scheduled=ScheduledCards(schedules),
            on_admin_event=alerts.analysis_event,
            track_lines=track.card_lines,
            delivery=delivery,
            card_lock=CardLock(async_redis, runtime.keys) if several else None,
        )
        return cls(
            settings=settings,
            access=Access(settings.allowed_user_ids, settings.admin_user_ids),
            service=service,
            schedules=schedules,
            factory=factory,
            notifier=notifier,
            ops=ops,
            async_redis=async_redis,
            alerts=alerts,
            ledger=UpdateLedger(async_redis, runtime.keys, bot.id),
            keys=runtime.keys,
            health=core.health,
            charts=charts,
            track=track,
            user_settings=user_settings,
            delivery=delivery,
        )

    async def close(self) -> None:
        await self.async_redis.aclose()
        self.service.close()


def consumer_name(settings: Settings) -> str:
    """This instance's consumer of the events group: BOT_INSTANCE, else (webhooks) one name per
    process, `<hostname>-<pid>`; with long polling there is one instance, "notifier"."""
    if settings.bot_instance:
        return settings.bot_instance
    if settings.telegram_webhook_url is None:
        return NOTIFIER_CONSUMER
    return f"{socket.gethostname()}-{os.getpid()}"


def services(context: ContextTypes.DEFAULT_TYPE) -> BotServices:
    return context.application.bot_data[BOT_DATA_KEY]
