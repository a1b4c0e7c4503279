"""The schedules' store: one hash per schedule, indexes by owner and overall, changed only through
the scripts of analysis/db/scripts/schedules.py. Schedules are kept until removed (no TTL)."""

from __future__ import annotations

import redis

from analysis.db.keys import Keys
from analysis.db.scripts import schedules as schedule_scripts
from analysis.engine.replies import text, texts
from analysis.schedules.model import Schedule


class ScheduleStore:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis, self.keys = client, keys
        self._create = schedule_scripts.SCHEDULE_CREATE.bind(client)
        self._delete = schedule_scripts.SCHEDULE_DELETE.bind(client)
        self._claim = schedule_scripts.SCHEDULE_CLAIM.bind(client)
        self._update = schedule_scripts.SCHEDULE_UPDATE.bind(client)
        self._resume = schedule_scripts.SCHEDULE_RESUME.bind(client)

    def get(self, schedule_id: str) -> Schedule | None:
        raw = self.redis.hgetall(self.keys.schedule(schedule_id))
        if not raw:
            return None
        return Schedule.from_hash({text(k): text(v) for k, v in raw.items()})

    def ids_of(self, owner: str) -> list[str]:
        return texts(self.redis.zrange(self.keys.schedules_of(owner), 0, -1))

    def all_ids(self) -> list[str]:
        return texts(self.redis.zrange(self.keys.schedules(), 0, -1))

    def create(self, schedule: Schedule, *, limit: int) -> tuple[str, list[str]]:
        k = self.keys
        pairs = [part for item in schedule.to_hash().items() for part in item]
        answer = self._create(
            schedule=k.schedule(schedule.id),
            owner_schedules=k.schedules_of(schedule.owner),
            all_schedules=k.schedules(),
            id=schedule.id,
            now=schedule.created_at,
            max_per_owner=limit,
            fields=pairs,
        )
        return answer.code.value, answer.values

    def delete(self, schedule: Schedule) -> bool:
        k = self.keys
        answer = self._delete(
            schedule=k.schedule(schedule.id),
            owner_schedules=k.schedules_of(schedule.owner),
            all_schedules=k.schedules(),
            id=schedule.id,
        )
        return answer.code == schedule_scripts.ScheduleDelete.OK

    def claim(self, schedule_id: str, *, fire_id: str, last_fire: str, now: float) -> str:
        answer = self._claim(
            schedule=self.keys.schedule(schedule_id), fire_id=fire_id, last_fire_seen=last_fire, now=now
        )
        return answer.code.value

    def update(
        self,
        schedule_id: str,
        *,
        add_runs: int = 0,
        add_skipped: int = 0,
        resumes_seen: int | None = None,
        **fields: object,
    ) -> bool:
        """Set fields (and add to the counters) of a schedule that still exists. With
        `resumes_seen`, failures, state and reason are left alone if it was resumed since."""
        pairs = [part for name, value in fields.items() for part in (name, str(value))]
        answer = self._update(
            schedule=self.keys.schedule(schedule_id),
            runs=add_runs,
            skips=add_skipped,
            resumes_seen="" if resumes_seen is None else str(resumes_seen),
            fields=pairs,
        )
        return answer.code == schedule_scripts.ScheduleUpdate.OK

    def resume(self, schedule_id: str, *, note: str) -> str:
        """paused -> active, failures reset (atomic): ok, active (it was not paused) or missing."""
        return self._resume(schedule=self.keys.schedule(schedule_id), note=note).code.value
