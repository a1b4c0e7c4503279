"""Where pick records live in Redis, apart from the gists (docs/track-record.md).

One string per record (`track:rec:<analysis id>:<seq>`, JSON, written once by WRITE_RECORD with
the retention as its TTL) and one hash of its metrics per horizon (`track:res:...`); sorted sets
find them: every record by when it was written, a group's records (strategy, timeframe, source)
by decision time t, a schedule's records by t, and the records not fully evaluated by when to look
at them again. Records outlive their analyses. Retention counts from the write (a ranking of old
csv candles is kept as long as a live one): the evaluation pass prunes records written more than
TRACK_RETENTION_DAYS ago from every index; their keys' TTL (two days longer, so the pass can
still read which indexes hold them) removes them even if no pass runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from analysis.db.keys import Keys
from analysis.db.scripts.track import WRITE_RECORD, WriteRecord
from analysis.track.model import PickRecord

DAY_S = 86400
TTL_MARGIN_S = 2 * DAY_S


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def texts(values: Any) -> list[str]:
    return [text(value) for value in values]


def record_id(analysis_id: str, seq: int) -> str:
    """A completion's record id: the analysis and the sequence its completing step committed,
    unique per completion (a refine completes again at a later seq) and the same for any
    redelivery of that step."""
    return f"{analysis_id}:{seq}"


def group_name(strategy: str, timeframe: str, source: str) -> str:
    """What records are aggregated by: 'score|1h|ccxt:binance'."""
    return f"{strategy}|{timeframe}|{source}"


@dataclass(frozen=True)
class StoredRecord:
    """A pick record as stored: track-core's PickRecord plus what the live side needs besides."""

    id: str
    record: PickRecord
    data_source: str  # the full spec the candles are read from later (csv:<dir>...)
    kind: str  # rank, entry or exit
    group: str
    extra: dict[str, Any] = field(default_factory=dict)  # since_previous (schedules)

    def to_json(self) -> str:
        doc = self.record.to_dict()
        doc.update(
            {
                "id": self.id,
                "data_source": self.data_source,
                "kind": self.kind,
                "group": self.group,
                **self.extra,
            }
        )
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoredRecord:
        doc = json.loads(raw)
        extra = {k: doc[k] for k in ("since_previous",) if k in doc}
        return cls(
            id=doc["id"],
            record=PickRecord.from_dict(doc),
            data_source=doc["data_source"],
            kind=doc["kind"],
            group=doc["group"],
            extra=extra,
        )


class RecordStore:
    def __init__(self, client: redis.Redis, keys: Keys, *, retention_days: int):
        self.redis, self.keys = client, keys
        self.retention_s = retention_days * DAY_S
        self._write = WRITE_RECORD.bind(client)

    # --- writing ----------------------------------------------------------------------------
    def write(self, stored: StoredRecord, *, due_s: float, now_s: float) -> bool:
        """Write the record and its indexes once; False when it exists already (a duplicate)."""
        k, schedule = self.keys, stored.record.schedule_id or ""
        answer = self._write(
            record=k.track_record(stored.id),
            all_index=k.track_all(),
            group_index=k.track_group(stored.group),
            due=k.track_due(),
            schedule_index=k.track_schedule(schedule),
            id=stored.id,
            doc=stored.to_json(),
            t_ms=stored.record.t,
            written_s=int(now_s),
            due_s=int(due_s),
            ttl_s=self.retention_s + TTL_MARGIN_S,
            schedule=schedule,
        )
        return answer.code == WriteRecord.OK

    def save_results(self, record_id: str, results: dict[int, dict], next_due_s: float | None) -> None:
        """Store what some horizons scored (analysis/track/live_evaluate.py: the strategy's and the
        baselines' metrics, the returns); `next_due_s` is when to look again, None when every
        horizon is scored (the record leaves the due index)."""
        k = self.keys
        with self.redis.pipeline() as pipe:  # MULTI: metrics and the due index move together
            if results:
                pipe.hset(
                    k.track_result(record_id),
                    mapping={str(h): json.dumps(r, separators=(",", ":")) for h, r in results.items()},
                )
                pipe.expire(k.track_result(record_id), self.retention_s + TTL_MARGIN_S)
            if next_due_s is None:
                pipe.zrem(k.track_due(), record_id)
            else:
                pipe.zadd(k.track_due(), {record_id: int(next_due_s)})
            pipe.execute()

    def postpone(self, record_id: str, next_due_s: float) -> None:
        self.redis.zadd(self.keys.track_due(), {record_id: int(next_due_s)})

    # --- reading ----------------------------------------------------------------------------
    def get(self, rid: str) -> StoredRecord | None:
        raw = self.redis.get(self.keys.track_record(rid))
        return StoredRecord.from_json(raw) if raw else None

    def get_many(self, ids: list[str]) -> list[StoredRecord]:
        if not ids:
            return []
        raws = self.redis.mget([self.keys.track_record(i) for i in ids])
        return [StoredRecord.from_json(raw) for raw in raws if raw]

    def results(self, rid: str) -> dict[int, dict]:
        raw = self.redis.hgetall(self.keys.track_result(rid))
        return {int(text(h)): json.loads(v) for h, v in raw.items()}

    def results_many(self, ids: list[str]) -> list[dict[int, dict]]:
        with self.redis.pipeline(transaction=False) as pipe:
            for rid in ids:
                pipe.hgetall(self.keys.track_result(rid))
            raws = pipe.execute()
        return [{int(text(h)): json.loads(v) for h, v in raw.items()} for raw in raws]

    def due_ids(self, now_s: float, limit: int = 500) -> list[str]:
        return texts(self.redis.zrangebyscore(self.keys.track_due(), "-inf", int(now_s), start=0, num=limit))

    def group_ids(self, group: str, limit: int = 5000) -> list[str]:
        """A group's record ids, oldest first (the newest `limit`)."""
        return texts(self.redis.zrange(self.keys.track_group(group), -limit, -1))

    def groups(self) -> list[str]:
        """Every group that has records (read from the newest records; cheap enough for /track)."""
        prefix = self.keys.track_group("")
        return sorted(text(key)[len(prefix) :] for key in self.redis.scan_iter(f"{prefix}*", count=500))

    def last_written(self, groups: list[str]) -> dict[str, float]:
        """When each group last got a record (read from its newest five by t: a record of old
        candles written now counts as activity now)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.zrange(self.keys.track_group(group), -5, -1)
            newest = pipe.execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for members in newest:
                pipe.zmscore(self.keys.track_all(), members or ["-"])
            scores = pipe.execute()
        return {g: max((x for x in row if x is not None), default=0.0) for g, row in zip(groups, scores)}

    def previous_of_schedule(self, schedule_id: str, t_ms: int) -> str | None:
        """The schedule's record just before decision time `t_ms` (None for its first)."""
        found = self.redis.zrevrangebyscore(
            self.keys.track_schedule(schedule_id), f"({t_ms}", "-inf", start=0, num=1
        )
        return text(found[0]) if found else None

    def count(self) -> int:
        return int(self.redis.zcard(self.keys.track_all()))

    # --- retention --------------------------------------------------------------------------
    def prune(self, now_s: float) -> int:
        """Drop records written more than the retention ago, with their metrics and index
        entries; answers how many went."""
        k = self.keys
        old = texts(self.redis.zrangebyscore(k.track_all(), "-inf", int(now_s - self.retention_s)))
        if not old:
            return 0
        stored = self.get_many(old)
        with self.redis.pipeline() as pipe:
            for group in {s.group for s in stored}:
                pipe.zrem(k.track_group(group), *[s.id for s in stored if s.group == group])
            for schedule in {s.record.schedule_id for s in stored if s.record.schedule_id}:
                pipe.zrem(
                    k.track_schedule(schedule), *[s.id for s in stored if s.record.schedule_id == schedule]
                )
            pipe.zrem(k.track_due(), *old)
            pipe.zrem(k.track_all(), *old)
            pipe.delete(*[k.track_record(i) for i in old], *[k.track_result(i) for i in old])
            pipe.execute()
        return len(old)
