"""What a schedule does on its own: beat's firing starts a run for its owner (or skips it, with a
note the owner sees), and a schedule is paused with a reason when its runs keep failing or its
chat cannot be posted to. A mixin of `ScheduleService` (analysis/schedules/service.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from analysis.access import owner_may_trade
from analysis.config_factory import RankingConfigFactory
from analysis.errors import AnalysisError, UnderMaintenance
from analysis.local_time import local_instant_due
from analysis.markets.registry import provider_from_spec
from analysis.models import Halt, Status
from analysis.schedules.model import ACTIVE, PAUSED, Schedule, build_config, cron_fields
from analysis.schedules.store import ScheduleStore
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FireResult:
    """What one firing did: started (analysis_id), skipped, failed, paused, missing, duplicate, raced."""

    code: str
    schedule_id: str
    analysis_id: str = ""
    note: str = ""


def utc_clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class ScheduleFiring:
    store: ScheduleStore
    analyses: AnalysisService
    factory: RankingConfigFactory
    settings: Settings
    clock: Callable[[], float]

    def pause(self, schedule_id: str, reason: str, resumes_seen: int | None = None) -> bool:
        """Pause a schedule with a reason its owner sees; False if it is gone. With
        `resumes_seen` (a firing's), not if it was resumed since the firing read it."""
        logger.warning("schedule %s paused: %s", schedule_id, reason)
        return self.store.update(schedule_id, state=PAUSED, reason=reason, resumes_seen=resumes_seen)

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
                return FireResult(
                    "not-due", schedule_id, note=f"not a minute of the line in {schedule.every.zone}"
                )
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
            self.store.update(
                schedule.id,
                failures=failures,
                baseline=baseline,
                last_analysis="",
                resumes_seen=schedule.resumes,
            )
            return self._paused(schedule, f"{failures} runs in a row failed (last: {last_error})")
        try:
            config = build_config(self._factory_for(schedule.data_source), schedule.options)
            gist = self.analyses.start(
                config, Actor(schedule.owner), schedule=schedule.id, schedule_prev=baseline
            )
        except AnalysisError as err:
            failures += 1
            note = f"the run due {utc_clock(now)} did not start: {err}"
            self.store.update(
                schedule.id,
                failures=failures,
                baseline=baseline,
                last_analysis="",
                note=note,
                resumes_seen=schedule.resumes,
            )
            logger.warning("schedule %s: %s", schedule.id, note)
            if failures >= self.settings.schedule_max_failures:
                self._paused(schedule, f"{failures} runs in a row failed (last: {err})")
            return FireResult("failed", schedule.id, note=note)
        self.store.update(
            schedule.id,
            add_runs=1,
            last_analysis=gist.id,
            last_run_at=repr(now),
            failures=failures,
            baseline=baseline,
            note="",
            resumes_seen=schedule.resumes,
        )
        logger.info(
            "[%s] started by schedule %s (run %d, changes against %s)",
            gist.id,
            schedule.id,
            schedule.runs + 1,
            baseline or "nothing: first run",
        )
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
            previous.status == Status.PAUSED and previous.halt != Halt.USER
        ):
            return (
                failures + 1,
                baseline,
                f"{previous.id}: {previous.reason or previous.status.value.lower()}",
            )
        return failures, baseline, ""

    def _skip(self, schedule: Schedule, note: str) -> FireResult:
        self.store.update(schedule.id, add_skipped=1, note=note)
        logger.info("schedule %s: %s", schedule.id, note)
        return FireResult("skipped", schedule.id, note=note)

    def _paused(self, schedule: Schedule, reason: str) -> FireResult:
        self.pause(schedule.id, reason, resumes_seen=schedule.resumes)
        return FireResult("paused", schedule.id, note=reason)
