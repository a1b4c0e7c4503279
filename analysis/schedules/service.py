"""The schedule service: what the fronts call to add, list, remove and resume recurring analyses
(what beat's task calls when a schedule fires is its part in firing.py). A schedule is validated
in full (interval, options through the same config factory as /rank) before anything is written;
a run is an ordinary analysis started through `AnalysisService.start` for the schedule's owner.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from analysis.access import owner_may_trade
from analysis.config_factory import RankingConfigFactory
from analysis.errors import AnalysisError, InvalidConfig, LimitReached, NotAllowed, NotFound, quoted
from analysis.local_time import UTC_NAME, next_local_run, zone_of
from analysis.models import Status
from analysis.schedules.changes import has_alerts
from analysis.schedules.firing import ScheduleFiring, utc_clock
from analysis.schedules.model import (
    ACTIVE,
    NOTIFY,
    PAUSED,
    SCHEDULE_ID_PATTERN,
    Every,
    Schedule,
    build_config,
    check_options,
    cron_fields,
    new_schedule_id,
    parse_every,
)
from analysis.schedules.store import ScheduleStore
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings

logger = logging.getLogger(__name__)


class BeatRegistrar(Protocol):
    """Keeps beat's entries in step with the schedules; `tasks/` implements it with celery-redbeat."""

    def add(self, schedule: Schedule) -> None: ...

    def remove(self, schedule_id: str) -> None: ...

    def next_runs(self, schedule_ids: list[str]) -> dict[str, float]: ...


@dataclass(frozen=True)
class ResumeResult:
    """What a resume did: `resumed`; or nothing, because the schedule is `already` active (an
    idempotent no-op) or because it cannot be (its owner is not allowed); `message` says which."""

    schedule: Schedule
    resumed: bool
    message: str
    already: bool = False


def zoned(every: Every, zone: str) -> Every:
    """A cron line read in `zone` (an IANA name; '' or UTC: as it is); an interval has no zone."""
    if not zone or zone_of(zone).key == UTC_NAME:
        return every
    if not every.cron:
        raise InvalidConfig(
            f"tz= applies to cron lines; every {every.text} runs at the same pace in any zone"
        )
    return replace(every, zone=zone_of(zone).key)


class ScheduleService(ScheduleFiring):
    def __init__(
        self,
        store: ScheduleStore,
        analyses: AnalysisService,
        factory: RankingConfigFactory,
        beat: BeatRegistrar,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.store, self.analyses, self.factory = store, analyses, factory
        self.beat, self.settings, self.clock = beat, settings, clock

    # --- for the fronts ---------------------------------------------------------------------
    def add(
        self,
        every: str,
        options: dict[str, Any],
        actor: Actor,
        *,
        chat_id: int | None = None,
        notify: str = "always",
        zone: str = "",
    ) -> Schedule:
        """Validate everything, then store the schedule and its beat entry; nothing is written
        for a schedule that is refused. `zone`: the IANA zone a cron line is read in."""
        parsed = zoned(parse_every(every, self.settings.schedule_min_interval_s), zone)
        if notify not in NOTIFY:
            raise InvalidConfig(f"notify must be always or changes, not {quoted(notify)}")
        options = check_options(options)
        config = build_config(self.factory, options)
        schedule = Schedule(
            id=new_schedule_id(),
            owner=actor.user_id,
            chat_id=chat_id,
            every=parsed,
            options=options,
            summary=config.summary(),
            data_source=config.data_source,
            notify=notify,
            created_at=self.clock(),
        )
        code, values = self.store.create(schedule, limit=self.settings.max_schedules_per_user)
        if code == "limit":
            raise LimitReached(
                f"you already have {values[0]} schedules; the limit is "
                f"{self.settings.max_schedules_per_user}: remove one first"
            )
        if code != "ok":
            raise AnalysisError("could not store the schedule; please try again")
        try:
            self.beat.add(schedule)
        except Exception:
            self.store.delete(schedule)
            logger.exception("schedule %s: beat entry not saved; the schedule was removed", schedule.id)
            raise AnalysisError("the scheduler could not be reached; nothing was saved") from None
        logger.info(
            "schedule %s added by %s: every %s, %s",
            schedule.id,
            schedule.owner,
            parsed.text,
            schedule.summary,
        )
        return schedule

    def get(self, schedule_id: str, actor: Actor, *, chat_admin_of: int | None = None) -> Schedule:
        """The schedule, if the actor owns it, is an admin, or (`chat_admin_of`, which the front
        asked Telegram) is an admin of the group the schedule posts to."""
        text = schedule_id.strip().lower() if isinstance(schedule_id, str) else ""
        if not SCHEDULE_ID_PATTERN.match(text):
            raise NotFound(f"no schedule {quoted(schedule_id)}: schedule ids look like q7m2k9xa")
        schedule = self.store.get(text)
        if schedule is None:
            raise NotFound(f"no schedule {quoted(text)}")
        group_admin = chat_admin_of is not None and schedule.chat_id == chat_admin_of
        if schedule.owner != actor.user_id and not actor.is_admin and not group_admin:
            raise NotAllowed("that schedule belongs to someone else")
        return schedule

    def list_for_chat(self, chat_id: int) -> builtins.list[Schedule]:
        """Every owner's schedules that post to `chat_id`: what that group's admins see."""
        found = (self.store.get(i) for i in self.store.all_ids())
        return [s for s in found if s is not None and s.chat_id == chat_id]

    def list(self, actor: Actor, *, everyone: bool = False, owner: str | None = None) -> list[Schedule]:
        """The actor's schedules; admins may ask for everyone's or another owner's."""
        if everyone and not actor.is_admin:
            raise NotAllowed("every user's schedules are for admins")
        if everyone:
            ids = self.store.all_ids()
        else:
            ids = self.store.ids_of(owner if owner is not None and actor.is_admin else actor.user_id)
        found = (self.store.get(i) for i in ids)
        return [s for s in found if s is not None]

    def next_runs(self, schedules: builtins.list[Schedule]) -> dict[str, float]:
        """When beat will fire each active schedule next (UTC epoch); best effort. A cron line in
        a zone: its next local minute (beat also fires at the other candidate minutes)."""
        try:
            found = self.beat.next_runs([s.id for s in schedules if s.state == ACTIVE])
        except Exception:
            logger.exception("next run times not available")
            return {}
        for s in schedules:
            if s.id in found and s.every.zone:
                found[s.id] = (
                    next_local_run(cron_fields(s.every.cron), s.every.zone, self.clock()) or found[s.id]
                )
        return found

    def remove(self, schedule_id: str, actor: Actor, *, chat_admin_of: int | None = None) -> Schedule:
        """Remove as its owner, an admin, or an admin of the group it posts to (`get`)."""
        schedule = self.get(schedule_id, actor, chat_admin_of=chat_admin_of)
        if not self.store.delete(schedule):
            raise NotFound(f"no schedule {quoted(schedule.id)}")
        self.beat.remove(schedule.id)  # a firing in between finds no schedule and does nothing
        logger.info(
            "schedule %s removed by %s%s",
            schedule.id,
            actor.user_id,
            f" (admin of chat {chat_admin_of})" if chat_admin_of is not None else "",
        )
        return schedule

    def resume(self, schedule_id: str, actor: Actor) -> ResumeResult:
        """Resume a paused schedule (its owner or an admin). Its owner must be allowed now; the
        failures in a row start again from 0; beat fires it at its next due time (its entry was
        kept, so no missed firing is made up). An active schedule is left as it is (`already`)."""
        schedule = self.get(schedule_id, actor)
        if schedule.state == PAUSED and not owner_may_trade(self.settings, schedule.owner):
            logger.info("schedule %s not resumed by %s: its owner is not allowed", schedule.id, actor.user_id)
            return ResumeResult(
                schedule,
                False,
                f"Schedule {schedule.id} stays paused: its owner "
                f"{schedule.owner} is not allowed to use the bot (ALLOWED_USER_IDS).",
            )
        code = (
            "active"
            if schedule.state != PAUSED
            else self.store.resume(schedule.id, note=f"resumed {utc_clock(self.clock())} by {actor.user_id}")
        )
        if code == "missing":
            raise NotFound(f"no schedule {quoted(schedule.id)}")
        if code == "active":  # already, or resumed meanwhile by a second tap: as it is now
            return ResumeResult(
                self.store.get(schedule.id) or schedule,
                False,
                f"Schedule {schedule.id} is already active.",
                already=True,
            )
        logger.info(
            "schedule %s resumed by %s (it was paused: %s)", schedule.id, actor.user_id, schedule.reason
        )
        return ResumeResult(self.store.get(schedule.id) or schedule, True, f"Resumed schedule {schedule.id}.")

    # --- for the bot's notifier -----------------------------------------------------------
    def chat_for_run(self, analysis_id: str) -> int | None:
        """The chat a run's card goes to now, or None: not a run of a schedule, a schedule of the
        CLI, a paused schedule, or `notify=changes` and nothing to tell (yet). One HGET for an
        analysis of no schedule."""
        schedule_id = self.analyses.schedule_of(analysis_id)
        schedule = self.store.get(schedule_id) if schedule_id else None
        if schedule is None or schedule.chat_id is None or schedule.state != ACTIVE:
            return None
        if schedule.notify == "changes":
            view = self.analyses.card_view(analysis_id)
            if view is None or not view.gist.status.is_final:
                return None
            changes = view.changes
            if (
                view.gist.status == Status.COMPLETED
                and changes
                and changes["against"]
                and not has_alerts(changes)
            ):
                logger.info(
                    "[%s] no market entered or left the top since %s: recorded, not posted (schedule %s)",
                    analysis_id,
                    changes["against"],
                    schedule_id,
                )
                return None
        return schedule.chat_id
