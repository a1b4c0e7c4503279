"""A schedule's latest top K handed to a trading bot: freqtrade's RemotePairList JSON behind a
per-schedule bearer token (docs/export.md).

freqtrade (freqtrade/plugins/pairlist/RemotePairList.py, 2026.9) GETs `pairlist_url` with
`Authorization: Bearer <bearer_token>`, reads the body only when the Content-Type contains
`application/json`, takes `pairs` (a list of pair names, each matched in full against the
exchange's ccxt markets: spot `BTC/USDT`, linear futures `BTC/USDT:USDT`) and `refresh_period`
(seconds; a larger remote value raises its own). The token is 32 random bytes, shown once; only its
sha256 is kept, in the schedule's hash, so removing the schedule removes it too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from analysis.errors import AnalysisError, InvalidConfig, NotFound, quoted
from analysis.models import Gist, Status
from analysis.schedules.model import CRON_FIELDS, SCHEDULE_ID_PATTERN, Schedule, _cron_field
from analysis.schedules.service import ScheduleService
from analysis.schedules.store import ScheduleStore
from analysis.service import Actor
from analysis.settings import Settings

logger = logging.getLogger(__name__)

# export=<format>: how a symbol (ccxt's spot notation, e.g. BTC/USDT) is written for freqtrade.
FORMATS = {"freqtrade": "spot", "freqtrade-futures": "futures"}


class NoList(AnalysisError):
    """The schedule has no completed run to serve yet (or its runs have expired)."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def freqtrade_pair(symbol: str, fmt: str) -> str:
    """BTC/USDT -> BTC/USDT (spot) or BTC/USDT:USDT (linear futures, settled in the quote)."""
    if FORMATS[fmt] == "futures" and ":" not in symbol and "/" in symbol:
        return f"{symbol}:{symbol.split('/', 1)[1]}"
    return symbol


def refresh_period_s(schedule: Schedule) -> int:
    """The schedule's interval; for a cron line, the shortest gap between two of its firings."""
    if schedule.every.interval_s:
        return schedule.every.interval_s
    minutes, hours = (
        _cron_field(text, *spec) for text, spec in zip(schedule.every.cron.split(), CRON_FIELDS)
    )
    times = sorted(h * 60 + m for h in hours for m in minutes)
    return 60 * min([b - a for a, b in zip(times, times[1:])] + [times[0] + 1440 - times[-1]])


@dataclass(frozen=True)
class Issued:
    """A new export: the URL and the token (shown once)."""

    schedule: Schedule
    url: str
    token: str


@dataclass(frozen=True)
class PairList:
    """What the URL serves: the body, the run it comes from, how old it is, how the latest run went."""

    body: dict
    analysis_id: str
    completed_at: float
    age_s: int
    latest_run: str  # the schedule's latest run: completed, running, failed..., expired, not started


def export_url(settings: Settings, schedule_id: str) -> str:
    base = settings.export_public_url or f"http://127.0.0.1:{settings.export_port}"
    return f"{base.rstrip('/')}/export/{schedule_id}"


class ExportService:
    """What the fronts call: turn a schedule's export on (a new token) or off."""

    def __init__(self, schedules: ScheduleService, *, clock: Callable[[], float] = time.time):
        self.schedules, self.clock = schedules, clock

    def check(self, fmt: str) -> None:
        """Refuse (InvalidConfig) an unknown format, or any export while the listener is off."""
        if fmt not in FORMATS:
            raise InvalidConfig(f"export must be {' or '.join(FORMATS)}, not {quoted(fmt, 30)}")
        if not self.schedules.settings.export_port:
            raise InvalidConfig("the export listener is off on this server (EXPORT_PORT is empty)")

    def enable(self, schedule_id: str, actor: Actor, fmt: str = "freqtrade") -> Issued:
        """A new token for the schedule (its owner or an admin); an older token stops working."""
        self.check(fmt)
        settings = self.schedules.settings
        schedule = self.schedules.get(schedule_id, actor)
        token = new_token()
        if not self.schedules.store.update(
            schedule.id, export=fmt, export_token_sha256=token_sha256(token), export_since=repr(self.clock())
        ):
            raise NotFound(f"no schedule {quoted(schedule.id)}")
        logger.info("schedule %s: export %s turned on by %s (a new token)", schedule.id, fmt, actor.user_id)
        return Issued(
            self.schedules.store.get(schedule.id) or schedule, export_url(settings, schedule.id), token
        )

    def revoke(self, schedule_id: str, actor: Actor) -> Schedule:
        """Turn the export off: its token gets 401 from now on."""
        schedule = self.schedules.get(schedule_id, actor)
        self.schedules.store.update(schedule.id, export="", export_token_sha256="", export_since="0")
        logger.info("schedule %s: export turned off by %s", schedule.id, actor.user_id)
        return self.schedules.store.get(schedule.id) or schedule


class PairListReader:
    """What the listener calls: the pair list of a schedule for a bearer token, or None (401)."""

    def __init__(self, schedules: ScheduleStore, analyses, *, clock: Callable[[], float] = time.time):
        self.schedules, self.analyses, self.clock = schedules, analyses, clock

    def authorized(self, schedule_id: str, token: str) -> Schedule | None:
        """The schedule if `token` is its current export token; None for anything else (a wrong,
        revoked or another schedule's token, an unknown id), alike."""
        schedule = self.schedules.get(schedule_id) if SCHEDULE_ID_PATTERN.fullmatch(schedule_id) else None
        wanted = schedule.export_token_sha256 if schedule is not None and schedule.export else ""
        if not hmac.compare_digest(token_sha256(token), wanted or "-"):
            return None
        return schedule

    def pair_list(self, schedule: Schedule) -> PairList:
        """The latest completed run's top K (the last good list when the latest run failed)."""
        latest = self.analyses.load(schedule.last_analysis) if schedule.last_analysis else None
        served = next(
            (
                run
                for run in (latest, self._load(schedule.baseline))
                if run is not None and run.status == Status.COMPLETED and run.result
            ),
            None,
        )
        if served is None:
            raise NoList(f"schedule {schedule.id} has no completed run yet")
        ranked = sorted(served.result, key=lambda item: item.rank)
        pairs = [freqtrade_pair(item.symbol, schedule.export) for item in ranked]
        return PairList(
            body={"pairs": pairs, "refresh_period": refresh_period_s(schedule)},
            analysis_id=served.id,
            completed_at=served.updated_at,
            age_s=max(0, int(self.clock() - served.updated_at)),
            latest_run=(
                latest.status.value.lower()
                if latest is not None
                else "expired"
                if schedule.last_analysis
                else "not started"
            ),
        )

    def _load(self, analysis_id: str) -> Gist | None:
        return self.analyses.load(analysis_id) if analysis_id else None
