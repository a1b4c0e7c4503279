"""The analysis store: gists, control keys and leases in Redis, changed only through the scripts of
`analysis/db/scripts/` (creation, steps, controls, watch), each called with its KEYS and ARGV by name.

Every method that changes state is one Lua script or one transaction, so each is atomic; time is
a parameter so expiry and watchdog logic are testable without sleeping. `AnalysisStore` is made
of one part per idea: reads (store_reads.py), the step protocol (store_steps.py), the control
actions (store_controls.py), the watchdog's (store_watch.py); here, an analysis's creation and
deletion, and the maintenance flag.
"""

from dataclasses import dataclass

import redis

from analysis.db.script import Answer
from analysis.db.scripts import creation
from analysis.engine.replies import text, texts
from analysis.engine.store_controls import ControlActions
from analysis.engine.store_reads import StoreReads
from analysis.engine.store_steps import StepWrites
from analysis.engine.store_watch import WatchActions
from analysis.models import GistField, RankingConfig, Status


@dataclass(frozen=True)
class QuotaUsed:
    """CREATE was not run: the owner started `starts` analyses in the last hour, the quota."""

    starts: int


class AnalysisStore(StoreReads, StepWrites, ControlActions, WatchActions):
    # --- creation ---------------------------------------------------------------------------
    def create(
        self,
        analysis_id: str,
        owner: str,
        config: RankingConfig,
        *,
        chain: str,
        demo: bool,
        model: str,
        now: float,
        schedule: str = "",
        schedule_prev: str = "",
        hourly_quota: bool = True,
    ) -> Answer[creation.Create] | QuotaUsed:
        """CREATE (the analysis joins the live index the watchdog watches), with the owner's
        hourly quota checked atomically (WATCH on the owner's index) unless `hourly_quota` is
        off: QuotaUsed with the starts of the last hour when it is used up. In the same
        transaction the owner's index drops expired analyses and lives as long as their newest
        gist."""
        s, k = self.settings, self.keys
        active = sorted(texts(self.redis.smembers(k.active(owner))))
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(k.owner(owner), k.restarts(owner))
                    starts = int(pipe.zcount(k.owner(owner), now - 3600, "+inf")) + int(
                        pipe.zcount(k.restarts(owner), now - 3600, "+inf")
                    )
                    if hourly_quota and starts >= s.max_starts_per_hour:
                        return QuotaUsed(starts)
                    pipe.multi()
                    pipe.zremrangebyscore(k.owner(owner), "-inf", now - s.gist_ttl_s)
                    self._queue(
                        pipe,
                        creation.CREATE,
                        gist=k.gist(analysis_id),
                        control=k.control(analysis_id),
                        owner_index=k.owner(owner),
                        all_index=k.analyses(),
                        active=k.active(owner),
                        events=k.events(),
                        live=k.live(),
                        active_gists=[k.gist(i) for i in active],
                        active_ids=active,
                        id=analysis_id,
                        owner=owner,
                        now=now,
                        config=config.model_dump_json(),
                        target=config.target_confidence,
                        demo=int(demo),
                        chain=chain,
                        gist_ttl_s=s.gist_ttl_s,
                        control_ttl_s=s.control_ttl_s,
                        model=model,
                        max_active=s.max_active_per_user,
                        events_maxlen=s.events_maxlen,
                        schedule=schedule,
                        schedule_prev=schedule_prev,
                    )
                    pipe.expire(k.owner(owner), s.gist_ttl_s)
                    return creation.CREATE.answer(pipe.execute()[1])
                except redis.WatchError:
                    continue

    # --- deletion ---------------------------------------------------------------------------
    def prune_finished(self, owner: str, keep: int) -> list[str]:
        """Delete the owner's oldest finished analyses beyond the newest `keep` (by creation
        time): gist, history, snapshot, control key, card and index entries; answers the ids
        deleted. Each is deleted only if still final (WATCH), so one refined meanwhile stays."""
        k = self.keys
        ids = texts(self.redis.zrange(k.owner(owner), 0, -1))  # oldest first
        with self.redis.pipeline(transaction=False) as pipe:
            for analysis_id in ids:
                pipe.hget(k.gist(analysis_id), GistField.STATUS)
            statuses = pipe.execute()
        finished = [
            i for i, status in zip(ids, statuses) if status is not None and Status(text(status)).is_final
        ]
        return [
            analysis_id
            for analysis_id in finished[: max(0, len(finished) - keep)]
            if self._delete_if_final(owner, analysis_id)
        ]

    def _delete_if_final(self, owner: str, analysis_id: str) -> bool:
        k = self.keys
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(k.gist(analysis_id))
                status = pipe.hget(k.gist(analysis_id), GistField.STATUS)
                if status is None or not Status(text(status)).is_final:
                    return False
                pipe.multi()
                pipe.delete(
                    k.gist(analysis_id),
                    k.history(analysis_id),
                    k.candles(analysis_id),
                    k.control(analysis_id),
                    k.card(analysis_id),
                )
                pipe.zrem(k.owner(owner), analysis_id)
                pipe.zrem(k.analyses(), analysis_id)
                pipe.srem(k.live(), analysis_id)
                pipe.srem(k.active(owner), analysis_id)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    # --- maintenance (analysis/maintenance.py; its reading: StoreReads.maintenance_since) ------
    def set_maintenance(self, *, by: str, now: float) -> bool:
        """Turn maintenance on; False if it was on already (its start time is kept)."""
        with self.redis.pipeline() as pipe:
            pipe.hsetnx(self.keys.maintenance(), "since", repr(now))
            pipe.hsetnx(self.keys.maintenance(), "by", by)
            return bool(pipe.execute()[0])

    def clear_maintenance(self) -> bool:
        """Turn maintenance off; False if it was off."""
        return bool(self.redis.delete(self.keys.maintenance()))
