"""The analysis store: gists, control keys and leases in Redis, changed only through the scripts of
`analysis/db/scripts/` (steps, controls, watch), each called with its KEYS and ARGV by name.

Every method that changes state is one Lua script, so each is atomic; time is a parameter so
expiry and watchdog logic are testable without sleeping.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import redis

from analysis.db.scripts import controls, steps, watch
from analysis.db.keys import Keys
from analysis.engine.replies import text, text_or_none, texts
from analysis.db.script import A, Answer, Script
from analysis.models import Gist, GistField, HistoryEntry, RankingConfig, Status, StepOutcome
from analysis.settings import Settings


@dataclass(frozen=True)
class BegunStep:
    config: RankingConfig
    state: dict
    target: float
    model: str
    owner: str
    result: list


@dataclass(frozen=True)
class QuotaUsed:
    """CREATE was not run: the owner started `starts` analyses in the last hour, the quota."""

    starts: int


class AnalysisStore:
    def __init__(self, client: redis.Redis, settings: Settings):
        self.redis = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._bound = {script.name: script.bind(client)
                       for script in steps.SCRIPTS + controls.SCRIPTS + watch.SCRIPTS}

    def _call(self, script: Script[A], **named: Any) -> Answer[A]:
        """Run `script` with its KEYS and ARGV by name; its answer as a member of its enum."""
        return self._bound[script.name](**named)

    def _queue(self, pipe: Any, script: Script[Any], **named: Any) -> None:
        """Queue `script` on a pipeline; `script.answer(raw)` reads its result after execute."""
        self._bound[script.name].queue(pipe, **named)

    # --- reads ----------------------------------------------------------------------------
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

    # --- creation ---------------------------------------------------------------------------
    def create(self, analysis_id: str, owner: str, config: RankingConfig, *, chain: str,
               demo: bool, model: str, now: float, schedule: str = "",
               schedule_prev: str = "",
               hourly_quota: bool = True) -> Answer[steps.Create] | QuotaUsed:
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
                    starts = (int(pipe.zcount(k.owner(owner), now - 3600, "+inf"))
                              + int(pipe.zcount(k.restarts(owner), now - 3600, "+inf")))
                    if hourly_quota and starts >= s.max_starts_per_hour:
                        return QuotaUsed(starts)
                    pipe.multi()
                    pipe.zremrangebyscore(k.owner(owner), "-inf", now - s.gist_ttl_s)
                    self._queue(
                        pipe, steps.CREATE, gist=k.gist(analysis_id),
                        control=k.control(analysis_id), owner_index=k.owner(owner),
                        all_index=k.analyses(), active=k.active(owner), events=k.events(),
                        live=k.live(), active_gists=[k.gist(i) for i in active],
                        active_ids=active, id=analysis_id, owner=owner, now=now,
                        config=config.model_dump_json(), target=config.target_confidence,
                        demo=int(demo), chain=chain, gist_ttl_s=s.gist_ttl_s,
                        control_ttl_s=s.control_ttl_s, model=model,
                        max_active=s.max_active_per_user, events_maxlen=s.events_maxlen,
                        schedule=schedule, schedule_prev=schedule_prev)
                    pipe.expire(k.owner(owner), s.gist_ttl_s)
                    return steps.CREATE.answer(pipe.execute()[1])
                except redis.WatchError:
                    continue

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
        finished = [i for i, status in zip(ids, statuses)
                    if status is not None and Status(text(status)).is_final]
        return [analysis_id for analysis_id in finished[:max(0, len(finished) - keep)]
                if self._delete_if_final(owner, analysis_id)]

    def _delete_if_final(self, owner: str, analysis_id: str) -> bool:
        k = self.keys
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(k.gist(analysis_id))
                status = pipe.hget(k.gist(analysis_id), GistField.STATUS)
                if status is None or not Status(text(status)).is_final:
                    return False
                pipe.multi()
                pipe.delete(k.gist(analysis_id), k.history(analysis_id), k.candles(analysis_id),
                            k.control(analysis_id), k.card(analysis_id))
                pipe.zrem(k.owner(owner), analysis_id)
                pipe.zrem(k.analyses(), analysis_id)
                pipe.srem(k.live(), analysis_id)
                pipe.srem(k.active(owner), analysis_id)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    # --- the step protocol ------------------------------------------------------------------
    def begin_step(self, analysis_id: str, chain: str, seq: int, attempt: str, *,
                   now: float) -> tuple[Answer[steps.BeginStep], BegunStep | None]:
        k, s = self.keys, self.settings
        answer = self._call(
            steps.BEGIN_STEP, control=k.control(analysis_id), gist=k.gist(analysis_id),
            lease=k.lease(analysis_id), events=k.events(), maintenance=k.maintenance(),
            chain=chain, seq=seq, attempt=attempt,
            lease_ms=s.lease_ms, now=now, control_ttl_s=s.control_ttl_s,
            events_maxlen=s.events_maxlen)
        if answer.code != steps.BeginStep.OK:
            return answer, None
        config, state, target, model, owner, result = answer.values
        begun = BegunStep(RankingConfig.model_validate_json(config), json.loads(state),
                          float(target), model, owner, json.loads(result))
        return Answer(steps.BeginStep.OK, []), begun

    def heartbeat(self, analysis_id: str, attempt: str) -> bool:
        answer = self._call(steps.HEARTBEAT, lease=self.keys.lease(analysis_id), attempt=attempt,
                            lease_ms=self.settings.lease_ms)
        return answer.code == steps.Heartbeat.OK

    def save_snapshot(self, analysis_id: str, attempt: str,
                      blobs: Mapping[str, str | bytes]) -> bool:
        """Replace the data snapshot with `blobs` (symbol -> its candle block refs) if `attempt`
        still holds the lease; False when it was fenced out and nothing was written."""
        pairs: list[object] = [part for symbol, blob in blobs.items() for part in (symbol, blob)]
        answer = self._call(steps.SAVE_SNAPSHOT, lease=self.keys.lease(analysis_id),
                            candles=self.keys.candles(analysis_id), attempt=attempt,
                            ttl_s=self.settings.gist_ttl_s, blobs=pairs)
        return answer.code == steps.SaveSnapshot.OK

    def commit_step(self, analysis_id: str, owner: str, chain: str, seq: int, attempt: str,
                    outcome: StepOutcome, entry: HistoryEntry, *, target_used: float,
                    now: float) -> Answer[steps.CommitStep]:
        k, s = self.keys, self.settings
        return self._call(
            steps.COMMIT_STEP, control=k.control(analysis_id), gist=k.gist(analysis_id),
            lease=k.lease(analysis_id), history=k.history(analysis_id), events=k.events(),
            active=k.active(owner), maintenance=k.maintenance(), attempt=attempt, chain=chain,
            seq=seq,
            state=json.dumps(outcome.state, separators=(",", ":")),
            progress=round(outcome.progress, 6), confidence=round(outcome.confidence, 6),
            done=int(outcome.done), result=json.dumps(outcome.result, separators=(",", ":")),
            entry=json.dumps(asdict(entry)), target_used=target_used, now=now,
            events_maxlen=s.events_maxlen, note=outcome.note, gist_ttl_s=s.gist_ttl_s,
            control_ttl_s=s.control_ttl_s)

    def stop_step(self, analysis_id: str, owner: str, chain: str, attempt: str, *, status: str,
                  reason: str, now: float) -> Answer[steps.StepStop]:
        """End a step that cannot finish: the analysis becomes PAUSED or FAILED with `reason`."""
        k = self.keys
        return self._call(
            steps.STEP_STOP, control=k.control(analysis_id), gist=k.gist(analysis_id),
            lease=k.lease(analysis_id), events=k.events(), active=k.active(owner),
            attempt=attempt, chain=chain, status=status, reason=reason, now=now,
            events_maxlen=self.settings.events_maxlen)

    # --- control actions ----------------------------------------------------------------------
    def pause(self, analysis_id: str, *, reason: str, now: float) -> Answer[controls.Pause]:
        k = self.keys
        return self._call(controls.PAUSE, control=k.control(analysis_id), gist=k.gist(analysis_id),
                          events=k.events(), now=now, reason=reason,
                          events_maxlen=self.settings.events_maxlen,
                          control_ttl_s=self.settings.control_ttl_s)

    def resume(self, analysis_id: str, *, new_chain: str, now: float,
               only_halt: str = "") -> Answer[controls.Resume]:
        """RESUME; with `only_halt`, only an analysis held by that halt (else KEPT)."""
        k, s = self.keys, self.settings
        return self._call(controls.RESUME, control=k.control(analysis_id), gist=k.gist(analysis_id),
                          lease=k.lease(analysis_id), events=k.events(), new_chain=new_chain,
                          now=now, control_ttl_s=s.control_ttl_s, events_maxlen=s.events_maxlen,
                          only_halt=only_halt)

    def refine(self, analysis_id: str, owner: str, *, generation: int, new_chain: str,
               step: float, cap: float, refine_model: str, now: float) -> Answer[controls.Refine]:
        """REFINE; a completed analysis it restarts counts like a start (the owner's active
        limit and hourly quota), joins the live index again and its snapshot, if any, lives as
        long as the gist again."""
        k, s = self.keys, self.settings
        answer = self._call(controls.REFINE, control=k.control(analysis_id), gist=k.gist(analysis_id),
                            events=k.events(), active=k.active(owner), live=k.live(),
                            owner_index=k.owner(owner), restarts=k.restarts(owner),
                            generation=generation, new_chain=new_chain, step=step, cap=cap,
                            refine_model=refine_model, now=now, control_ttl_s=s.control_ttl_s,
                            events_maxlen=s.events_maxlen, max_active=s.max_active_per_user,
                            max_starts=s.max_starts_per_hour)
        if answer.code == controls.Refine.ENQUEUE:
            ttl = int(self.redis.ttl(k.gist(analysis_id)))
            self.redis.expire(k.candles(analysis_id), max(ttl, 60))
        return answer

    def has_snapshot(self, analysis_id: str) -> bool:
        return bool(self.redis.exists(self.keys.candles(analysis_id)))

    def cancel(self, analysis_id: str, owner: str, *, now: float) -> Answer[controls.Cancel]:
        k, s = self.keys, self.settings
        return self._call(controls.CANCEL, control=k.control(analysis_id), gist=k.gist(analysis_id),
                          events=k.events(), active=k.active(owner), now=now,
                          control_ttl_s=s.control_ttl_s, events_maxlen=s.events_maxlen)

    def force_resume(self, analysis_id: str, *, new_chain: str,
                     now: float) -> Answer[controls.ForceResume]:
        k, s = self.keys, self.settings
        return self._call(controls.FORCE_RESUME, control=k.control(analysis_id),
                          gist=k.gist(analysis_id), lease=k.lease(analysis_id), events=k.events(),
                          new_chain=new_chain, now=now, control_ttl_s=s.control_ttl_s,
                          events_maxlen=s.events_maxlen)

    def watchdog_check(self, analysis_id: str, *, now: float,
                       pending: Iterable[str] = ()) -> Answer[watch.WatchdogCheck]:
        """The watchdog acting on the one rule for stuck (the prologue's stuck_rule). `pending`: the
        deliveries of this analysis the broker holds, as 'chain:seq'."""
        k, s = self.keys, self.settings
        return self._call(watch.WATCHDOG_CHECK, control=k.control(analysis_id),
                          gist=k.gist(analysis_id), lease=k.lease(analysis_id), events=k.events(),
                          now=now, grace_s=s.watchdog_grace_s, max_attempts=s.watchdog_max_attempts,
                          events_maxlen=s.events_maxlen, pending=list(pending))

    def stuck_check(self, analysis_id: str, *, now: float, grace_s: float | None = None,
                    pending: Iterable[str] = ()) -> Answer[watch.StuckCheck]:
        """The watchdog's rule, read only: is this analysis stuck (or halted by the watchdog)?
        `pending`: as for watchdog_check."""
        k = self.keys
        grace_s = self.settings.watchdog_grace_s if grace_s is None else grace_s
        return self._call(watch.STUCK_CHECK, control=k.control(analysis_id),
                          gist=k.gist(analysis_id), lease=k.lease(analysis_id), now=now,
                          grace_s=grace_s, pending=list(pending))

    def sweep(self, ids: list[str], *, now: float) -> int:
        """Drop final and expired analyses among `ids` from the live index (a completed one
        keeps its snapshot for REFINE_WINDOW_S), and expired ones from the global index; answers
        how many left the live index."""
        k, s = self.keys, self.settings
        with self.redis.pipeline(transaction=False) as pipe:
            for analysis_id in ids:
                self._queue(pipe, watch.SWEEP_FINAL, live=k.live(), gist=k.gist(analysis_id),
                            candles=k.candles(analysis_id), id=analysis_id, now=now,
                            refine_window_s=s.refine_window_s)
            pipe.zremrangebyscore(k.analyses(), "-inf", now - s.gist_ttl_s)
            answers = pipe.execute()[:-1]
        return sum(watch.SWEEP_FINAL.answer(raw).code == watch.SweepFinal.DROPPED for raw in answers)

    def storage_full(self, analysis_id: str, chain: str, seq: int, *,
                     now: float) -> Answer[steps.StorageFull]:
        """Pause the analysis with the reason 'storage full' and tell admins; runs at Redis's
        memory limit too."""
        k, s = self.keys, self.settings
        entry = json.dumps({"id": analysis_id, "seq": seq, "reason": "storage full", "at": now})
        return self._call(steps.STORAGE_FULL, control=k.control(analysis_id),
                          gist=k.gist(analysis_id), lease=k.lease(analysis_id), events=k.events(),
                          failures=k.failures(), chain=chain, now=now,
                          events_maxlen=s.events_maxlen, entry=entry)

    def add_spend(self, analysis_id: str, spent: dict[str, int]) -> bool:
        """Add to the analysis's LLM spend counters (Gist.spend); False if the gist is gone."""
        pairs: list[object] = [part for name, amount in spent.items() if amount
                               for part in (name, int(amount))]
        if not pairs:
            return True
        answer = self._call(steps.ADD_SPEND, gist=self.keys.gist(analysis_id),
                            metrics=self.keys.metrics(), spent=pairs)
        return answer.code == steps.AddSpend.OK

    # --- maintenance (analysis/maintenance.py) ---------------------------------------------------
    def maintenance_since(self) -> tuple[float, str] | None:
        """(since, by) while maintenance is on, else None."""
        raw = self.redis.hmget(self.keys.maintenance(), "since", "by")
        if raw[0] is None:
            return None
        return float(text(raw[0])), text_or_none(raw[1]) or ""

    def set_maintenance(self, *, by: str, now: float) -> bool:
        """Turn maintenance on; False if it was on already (its start time is kept)."""
        with self.redis.pipeline() as pipe:
            pipe.hsetnx(self.keys.maintenance(), "since", repr(now))
            pipe.hsetnx(self.keys.maintenance(), "by", by)
            return bool(pipe.execute()[0])

    def clear_maintenance(self) -> bool:
        """Turn maintenance off; False if it was off."""
        return bool(self.redis.delete(self.keys.maintenance()))

    # --- failures, for admins ---------------------------------------------------------------
    def record_failure(self, analysis_id: str, seq: int, reason: str, *, now: float) -> None:
        entry = json.dumps({"id": analysis_id, "seq": seq, "reason": reason, "at": now})
        with self.redis.pipeline() as pipe:
            pipe.lpush(self.keys.failures(), entry)
            pipe.ltrim(self.keys.failures(), 0, 99)
            pipe.execute()

    def recent_failures(self, limit: int = 20) -> list[dict]:
        return [json.loads(row) for row in self.redis.lrange(self.keys.failures(), 0, limit - 1)]
