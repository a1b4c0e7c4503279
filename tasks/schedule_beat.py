"""The schedules' beat entries in celery-redbeat: one entry `schedule:<id>` per schedule, firing
`marketrank.scheduled_run` with the schedule id (Flower shows `schedule=<id>`)."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab, schedule as every_interval
from redbeat import RedBeatSchedulerEntry
from redbeat.schedulers import get_redis

from analysis.schedules import Every, Schedule

SCHEDULED_RUN_TASK = "marketrank.scheduled_run"


def entry_name(schedule_id: str) -> str:
    return f"schedule:{schedule_id}"


def scheduled_run_argsrepr(schedule_id: str) -> str:
    return f"schedule={schedule_id}"


def celery_schedule(every: Every, app: Celery):
    """An interval, or a cron line read in UTC (the app's timezone)."""
    if every.cron:
        minute, hour, day_of_month, month_of_year, day_of_week = every.cron.split()
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                       month_of_year=month_of_year, day_of_week=day_of_week, app=app)
    return every_interval(timedelta(seconds=every.interval_s), app=app)


class RedBeatRegistrar:
    def __init__(self, app: Celery):
        self.app = app

    def add(self, schedule: Schedule) -> None:
        """Save the entry. An interval's first run is due at once (it sets the baseline the next
        runs are compared with); a cron line's at its next matching minute."""
        entry = RedBeatSchedulerEntry(
            name=entry_name(schedule.id), task=SCHEDULED_RUN_TASK,
            schedule=celery_schedule(schedule.every, self.app), args=[schedule.id],
            options={"argsrepr": scheduled_run_argsrepr(schedule.id)}, app=self.app)
        if schedule.every.cron:
            entry.last_run_at = self.app.now()
        entry.save()

    def remove(self, schedule_id: str) -> None:
        RedBeatSchedulerEntry(name=entry_name(schedule_id), app=self.app).delete()

    def next_runs(self, schedule_ids: list[str]) -> dict[str, float]:
        """Each entry's next due time (UTC epoch) from redbeat's due set."""
        conf = self.app.redbeat_conf
        keys = [conf.key_prefix + entry_name(i) for i in schedule_ids]
        if not keys:
            return {}
        scores = get_redis(self.app).zmscore(conf.schedule_key, keys)
        return {i: float(s) for i, s in zip(schedule_ids, scores) if s is not None and s >= 0}


def default_registrar() -> RedBeatRegistrar:
    from redbeat.schedulers import ensure_conf

    from tasks.celery_app import app

    ensure_conf(app)
    return RedBeatRegistrar(app)
