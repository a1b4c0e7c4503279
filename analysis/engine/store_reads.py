"""The analysis store's reads: gists, histories, chains, leases and the indexes, as they are now
(plain Redis reads, no script)."""

import json

from analysis.engine.replies import text, text_or_none, texts
from analysis.engine.store_base import StoreBase
from analysis.models import Gist, GistField, HistoryEntry


class StoreReads(StoreBase):
    def load(self, analysis_id: str) -> Gist | None:
        raw = self.redis.hgetall(self.keys.gist(analysis_id))
        if not raw:
            return None
        return Gist.from_hash({text(k): text(v) for k, v in raw.items()})

    def schedule_of(self, analysis_id: str) -> str:
        """The schedule the analysis is a run of ('' for none, or no such analysis): one HGET."""
        return text(self.redis.hget(self.keys.gist(analysis_id), GistField.SCHEDULE) or "")

    def history(self, analysis_id: str) -> list[HistoryEntry]:
        rows = self.redis.lrange(self.keys.history(analysis_id), 0, -1)
        return [HistoryEntry(**json.loads(row)) for row in rows]

    def chain(self, analysis_id: str) -> str | None:
        return text_or_none(self.redis.hget(self.keys.control(analysis_id), "chain"))

    def lease_holder(self, analysis_id: str) -> str | None:
        return text_or_none(self.redis.get(self.keys.lease(analysis_id)))

    def ids_of_owner(self, owner: str, limit: int = 50) -> list[str]:
        return texts(self.redis.zrevrange(self.keys.owner(owner), 0, limit - 1))

    def all_ids(self, limit: int = 1000) -> list[str]:
        return texts(self.redis.zrevrange(self.keys.analyses(), 0, limit - 1))

    def live_ids(self) -> list[str]:
        """Every analysis not yet final (and some that became final since the last sweep)."""
        return sorted(texts(self.redis.smembers(self.keys.live())))

    def starts_in_last_hour(self, owner: str, now: float) -> int:
        """Starts and refines that restarted a completed analysis: what the hourly quota counts."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(self.keys.owner(owner), now - 3600, "+inf")
            pipe.zcount(self.keys.restarts(owner), now - 3600, "+inf")
            return sum(int(n) for n in pipe.execute())

    def active_count(self, owner: str) -> int:
        return int(self.redis.scard(self.keys.active(owner)))

    def has_snapshot(self, analysis_id: str) -> bool:
        return bool(self.redis.exists(self.keys.candles(analysis_id)))

    def maintenance_since(self) -> tuple[float, str] | None:
        """(since, by) while maintenance is on, else None."""
        raw = self.redis.hmget(self.keys.maintenance(), "since", "by")
        if raw[0] is None:
            return None
        return float(text(raw[0])), text_or_none(raw[1]) or ""

    def recent_failures(self, limit: int = 20) -> list[dict]:
        return [json.loads(row) for row in self.redis.lrange(self.keys.failures(), 0, limit - 1)]
