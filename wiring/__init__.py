"""The composition root: the services of analysis/services.py over the real Celery side (dispatcher,
broker ops, RedBeat registrar, health). The fronts (bot, CLI, make run) import this, never tasks/."""

from __future__ import annotations

from dataclasses import dataclass

from analysis.db.connect import async_redis_client, redis_client
from analysis.engine.runtime import Runtime
from analysis.health import Health
from analysis.services import CoreServices, build_services
from analysis.settings import Settings
from analysis.track.service import TrackService
from analysis.user_settings import UserSettingsService, UserSettingsStore
from tasks.dispatcher import CeleryDispatcher
from tasks.health import check_health
from tasks.ops import BrokerOps, default_ops
from tasks.schedule_beat import default_registrar

__all__ = ["BrokerOps", "Services", "async_redis_client", "celery_services", "redis_client"]


@dataclass
class Services(CoreServices):
    ops: BrokerOps

    def health(self) -> Health:
        return check_health(self.runtime, self.service, self.ops)

    def track(self) -> TrackService:
        """The track record as the fronts read it (tables, card lines)."""
        s = self.runtime.settings
        return TrackService(
            self.runtime.redis,
            self.runtime.keys,
            retention_days=s.track_retention_days,
            horizons=s.track_horizons,
        )

    def user_settings(self) -> UserSettingsService:
        """Every user's own settings (zone, quiet hours, kinds of message)."""
        s = self.runtime.settings
        return UserSettingsService(
            UserSettingsStore(
                self.runtime.redis,
                self.runtime.keys,
                max_held=s.quiet_max_held,
                held_ttl_s=s.quiet_held_ttl_s,
            )
        )


def celery_services(settings: Settings, *, label: str = "") -> Services:
    """Everything a front calls, over a new Runtime; steps it enqueues carry `label`."""
    runtime = Runtime(settings)
    ops = default_ops()
    core = build_services(
        runtime,
        CeleryDispatcher(label=label),
        default_registrar(),
        pending_steps=ops.pending_steps_within(settings.watchdog_grace_s),
    )
    return Services(
        runtime=core.runtime, service=core.service, schedules=core.schedules, factory=core.factory, ops=ops
    )
