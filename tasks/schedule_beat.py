"""The schedules' beat entries in celery-redbeat: one entry `schedule:<id>` per schedule, firing
`marketrank.scheduled_run` with the schedule id (Flower shows `schedule=<id>`)."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab
from celery.schedules import schedule as every_interval
from redbeat import RedBeatSchedulerEntry

from analysis.local_time import utc_candidates
from analysis.schedules.model import Every, Schedule, cron_fields

SCHEDULED_RUN_TASK = "marketrank.scheduled_run"


def entry_name(schedule_id: str) -> str:
    return f"schedule:{schedule_id}"


def scheduled_run_argsrepr(schedule_id: str) -> str:
    return f"schedule={schedule_id}"


def celery_schedule(every: Every, app: Celery):
    """An interval, or a cron line read in UTC (the app's timezone). A cron line in a zone fires at
    every UTC minute its local minute can fall on (celery-redbeat stores no zone with a crontab);
    the firing itself checks the zone's clock (`ScheduleService.fire`)."""
    if every.cron and every.zone:
        fields = cron_fields(every.cron)
        minutes, hours = utc_candidates(fields[0], fields[1], every.zone, app.now().timestamp())
        return crontab(
            minute=",".join(map(str, sorted(minutes))), hour=",".join(map(str, sorted(hours))), app=app
        )
    if every.cron:
        minute, hour, day_of_month, month_of_year, day_of_week = every.cron.split()
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            app=app,
        )
    return every_interval(timedelta(seconds=every.interval_s), app=app)


class RedBeatRegistrar:
    def __init__(self, app: Celery):
        self.app = app

    def add(self, schedule: Schedule) -> None:
        """Save the entry. An interval's first run is due at once (it sets the baseline the next
        runs are compared with); a cron line's at its next matching minute."""
        entry = RedBeatSchedulerEntry(
            name=entry_name(schedule.id),
            task=SCHEDULED_RUN_TASK,
            schedule=celery_schedule(schedule.every, self.app),
            args=[schedule.id],
            options={"argsrepr": scheduled_run_argsrepr(schedule.id)},
            app=self.app,
        )
        # celery's entry takes "now" as its last run when given none, which would put an
        # interval's first run one interval away; redbeat reads no last run as due at once.
        entry.last_run_at = self.app.now() if schedule.every.cron else None
        entry.save()

    def remove(self, schedule_id: str) -> None:
        RedBeatSchedulerEntry(name=entry_name(schedule_id), app=self.app).delete()

    def next_runs(self, schedule_ids: list[str]) -> dict[str, float]:
        """Each entry's next due time (UTC epoch, to the second). Read from the entry rather than
        redbeat's due set, whose scores are whole seconds: a cron entry's would read 03:59:59 for
        a run that beat fires at 04:00:00."""
        found = {}
        for schedule_id in schedule_ids:
            try:
                entry = RedBeatSchedulerEntry.from_key(
                    self.app.redbeat_conf.key_prefix + entry_name(schedule_id), app=self.app
                )
            except KeyError:
                continue
            due = entry.due_at
            if due is not None:
                found[schedule_id] = float(round(due.timestamp()))
        return found


def default_registrar() -> RedBeatRegistrar:
    from redbeat.schedulers import ensure_conf

    from tasks.celery_app import app

    ensure_conf(app)
    return RedBeatRegistrar(app)
