"""The schedule service: what the fronts call to add, list and remove recurring analyses, and what
beat's task calls when a schedule fires. A schedule is validated in full (interval, options through
the same config factory as /rank) before anything is written; a run is an ordinary analysis
started through `AnalysisService.start` for the schedule's owner.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from analysis.access import owner_may_trade
from analysis.config_factory import RankingConfigFactory
from analysis.errors import (AnalysisError, InvalidConfig, LimitReached, NotAllowed, NotFound,
                             UnderMaintenance, quoted)
from analysis.markets.registry import provider_from_spec
from analysis.models import Halt, Status
from analysis.local_time import UTC_NAME, local_instant_due, next_local_run, zone_of
from analysis.schedules.model import (ACTIVE, NOTIFY, PAUSED, SCHEDULE_ID_PATTERN, Every, Schedule, build_config,
                                      check_options, cron_fields, new_schedule_id, parse_every)
from analysis.schedules.changes import has_alerts
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
class FireResult:
    """What one firing did: started (analysis_id), skipped, failed, paused, missing, duplicate, raced."""

    code: str
    schedule_id: str
    analysis_id: str = ""
    note: str = ""


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
        raise InvalidConfig(f"tz= applies to cron lines; every {every.text} runs at the same pace in any zone")
    return replace(every, zone=zone_of(zone).key)


def utc_clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class ScheduleService:
    def __init__(self, store: ScheduleStore, analyses: AnalysisService, factory: RankingConfigFactory,
                 beat: BeatRegistrar, settings: Settings, *, clock: Callable[[], float] = time.time):
        self.store, self.analyses, self.factory = store, analyses, factory
        self.beat, self.settings, self.clock = beat, settings, clock

    # --- for the fronts ---------------------------------------------------------------------
    def add(self, every: str, options: dict[str, Any], actor: Actor, *, chat_id: int | None = None,
            notify: str = "always", zone: str = "") -> Schedule:
        """Validate everything, then store the schedule and its beat entry; nothing is written
        for a schedule that is refused. `zone`: the IANA zone a cron line is read in."""
        parsed = zoned(parse_every(every, self.settings.schedule_min_interval_s), zone)
        if notify not in NOTIFY:
            raise InvalidConfig(f"notify must be always or changes, not {quoted(notify)}")
        options = check_options(options)
        config = build_config(self.factory, options)
        schedule = Schedule(id=new_schedule_id(), owner=actor.user_id, chat_id=chat_id, every=parsed,
                            options=options, summary=config.summary(),
                            data_source=config.data_source, notify=notify,
                            created_at=self.clock())
        code, values = self.store.create(schedule, limit=self.settings.max_schedules_per_user)
        if code == "limit":
            raise LimitReached(f"you already have {values[0]} schedules; the limit is "
                               f"{self.settings.max_schedules_per_user}: remove one first")
        if code != "ok":
            raise AnalysisError("could not store the schedule; please try again")
        try:
            self.beat.add(schedule)
        except Exception:
            self.store.delete(schedule)
            logger.exception("schedule %s: beat entry not saved; the schedule was removed", schedule.id)
            raise AnalysisError("the scheduler could not be reached; nothing was saved") from None
        logger.info("schedule %s added by %s: every %s, %s", schedule.id, schedule.owner,
                    parsed.text, schedule.summary)
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
                found[s.id] = next_local_run(cron_fields(s.every.cron), s.every.zone, self.clock()) or found[s.id]
        return found

    def remove(self, schedule_id: str, actor: Actor, *, chat_admin_of: int | None = None) -> Schedule:
        """Remove as its owner, an admin, or an admin of the group it posts to (`get`)."""
        schedule = self.get(schedule_id, actor, chat_admin_of=chat_admin_of)
        if not self.store.delete(schedule):
            raise NotFound(f"no schedule {quoted(schedule.id)}")
        self.beat.remove(schedule.id)  # a firing in between finds no schedule and does nothing
        logger.info("schedule %s removed by %s%s", schedule.id, actor.user_id,
                    f" (admin of chat {chat_admin_of})" if chat_admin_of is not None else "")
        return schedule

    def pause(self, schedule_id: str, reason: str, resumes_seen: int | None = None) -> bool:
        """Pause a schedule with a reason its owner sees; False if it is gone. With
        `resumes_seen` (a firing's), not if it was resumed since the firing read it."""
        logger.warning("schedule %s paused: %s", schedule_id, reason)
        return self.store.update(schedule_id, state=PAUSED, reason=reason, resumes_seen=resumes_seen)

    def resume(self, schedule_id: str, actor: Actor) -> ResumeResult:
        """Resume a paused schedule (its owner or an admin). Its owner must be allowed now; the
        failures in a row start again from 0; beat fires it at its next due time (its entry was
        kept, so no missed firing is made up). An active schedule is left as it is (`already`)."""
        schedule = self.get(schedule_id, actor)
        if schedule.state == PAUSED and not owner_may_trade(self.settings, schedule.owner):
            logger.info("schedule %s not resumed by %s: its owner is not allowed", schedule.id, actor.user_id)
            return ResumeResult(schedule, False, f"Schedule {schedule.id} stays paused: its owner "
                                f"{schedule.owner} is not allowed to use the bot (ALLOWED_USER_IDS).")
        code = "active" if schedule.state != PAUSED else self.store.resume(
            schedule.id, note=f"resumed {utc_clock(self.clock())} by {actor.user_id}")
        if code == "missing":
            raise NotFound(f"no schedule {quoted(schedule.id)}")
        if code == "active":  # already, or resumed meanwhile by a second tap: as it is now
            return ResumeResult(self.store.get(schedule.id) or schedule, False,
                                f"Schedule {schedule.id} is already active.", already=True)
        logger.info("schedule %s resumed by %s (it was paused: %s)", schedule.id, actor.user_id, schedule.reason)
        return ResumeResult(self.store.get(schedule.id) or schedule, True, f"Resumed schedule {schedule.id}.")

    # --- for beat's task --------------------------------------------------------------------
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
            if view.gist.status == Status.COMPLETED and changes and changes["against"] and not has_alerts(changes):
                logger.info("[%s] no market entered or left the top since %s: recorded, not posted "
                            "(schedule %s)", analysis_id, changes["against"], schedule_id)
                return None
        return schedule.chat_id

    def fire(self, schedule_id: str, fire_id: str) -> FireResult:
        """One firing: start a run for the owner, unless the schedule is gone or paused, the
        owner is no longer allowed, or the previous run is still going (skipped, with a note)."""
        now = self.clock()
        schedule = self.store.get(schedule_id)
        if schedule is None:
            return FireResult("missing", schedule_id)
        if fire_id and schedule.last_fire == fire_id:  # the same beat message, delivered again
            return FireResult("duplicate", schedule_id)
        if schedule.state != ACTIVE:
            return FireResult("paused", schedule_id, note=schedule.reason)
        if not owner_may_trade(self.settings, schedule.owner):
            return self._paused(schedule, "its owner is no longer allowed to use the bot")
        if schedule.every.zone:  # beat fires at every UTC minute the local one could be
            local = local_instant_due(cron_fields(schedule.every.cron), schedule.every.zone, now)
            if local is None:
                return FireResult("not-due", schedule_id, note=f"not a minute of the line in {schedule.every.zone}")
            fire_id = f"local@{int(local)}"  # two candidate firings of one local minute: one run
            if schedule.last_fire == fire_id:
                return FireResult("duplicate", schedule_id)
        # One firing, one outcome: a redelivered or racing message stops here.
        claim = self.store.claim(schedule.id, fire_id=fire_id, last_fire=schedule.last_fire, now=now)
        if claim != "ok":
            return FireResult(claim, schedule.id)
        if self.analyses.store.maintenance_since() is not None:
            return self._skip(schedule, f"skipped the run due {utc_clock(now)}: {UnderMaintenance.MESSAGE}")
        previous = self.analyses.store.load(schedule.last_analysis) if schedule.last_analysis else None
        if previous is not None and previous.status in (Status.RUNNING, Status.PENDING):
            note = f"skipped the run due {utc_clock(now)}: the previous run {previous.id} is still going"
            self.store.update(schedule.id, add_skipped=1, note=note)
            logger.info("schedule %s: %s", schedule.id, note)
            return FireResult("skipped", schedule.id, note=note)
        failures, baseline, last_error = self._judge_previous(schedule, previous)
        if failures >= self.settings.schedule_max_failures:
            # Counted now and forgotten (as a run that did not start): a resume starts from 0.
            self.store.update(schedule.id, failures=failures, baseline=baseline, last_analysis="",
                              resumes_seen=schedule.resumes)
            return self._paused(schedule, f"{failures} runs in a row failed (last: {last_error})")
        try:
            config = build_config(self._factory_for(schedule.data_source), schedule.options)
            gist = self.analyses.start(config, Actor(schedule.owner), schedule=schedule.id,
                                       schedule_prev=baseline)
        except AnalysisError as err:
            failures += 1
            note = f"the run due {utc_clock(now)} did not start: {err}"
            self.store.update(schedule.id, failures=failures, baseline=baseline, last_analysis="", note=note,
                              resumes_seen=schedule.resumes)
            logger.warning("schedule %s: %s", schedule.id, note)
            if failures >= self.settings.schedule_max_failures:
                self._paused(schedule, f"{failures} runs in a row failed (last: {err})")
            return FireResult("failed", schedule.id, note=note)
        self.store.update(schedule.id, add_runs=1, last_analysis=gist.id, last_run_at=repr(now),
                          failures=failures, baseline=baseline, note="", resumes_seen=schedule.resumes)
        logger.info("[%s] started by schedule %s (run %d, changes against %s)", gist.id, schedule.id,
                    schedule.runs + 1, baseline or "nothing: first run")
        return FireResult("started", schedule.id, analysis_id=gist.id)

    def _factory_for(self, data_source: str) -> RankingConfigFactory:
        """The config factory over the data source the schedule was made on."""
        if data_source == self.factory.data_source:
            return self.factory
        return RankingConfigFactory(self.settings, provider_from_spec(data_source))

    def _judge_previous(self, schedule: Schedule, previous) -> tuple[int, str, str]:
        """(failures in a row, baseline, last error) once the previous run has ended: a completed
        run becomes the baseline; a failed one, or one paused by an error, counts as a failure."""
        failures, baseline = schedule.failures, schedule.baseline
        if previous is None:
            return failures, baseline, ""
        if previous.status == Status.COMPLETED:
            return 0, previous.id, ""
        if previous.status == Status.FAILED or (
                previous.status == Status.PAUSED and previous.halt != Halt.USER):
            return failures + 1, baseline, f"{previous.id}: {previous.reason or previous.status.value.lower()}"
        return failures, baseline, ""

    def _skip(self, schedule: Schedule, note: str) -> FireResult:
        self.store.update(schedule.id, add_skipped=1, note=note)
        logger.info("schedule %s: %s", schedule.id, note)
        return FireResult("skipped", schedule.id, note=note)

    def _paused(self, schedule: Schedule, reason: str) -> FireResult:
        self.pause(schedule.id, reason, resumes_seen=schedule.resumes)
        return FireResult("paused", schedule.id, note=reason)
