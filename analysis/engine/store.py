"""The analysis store: gists, control keys and leases in Redis, changed only through `lua.py`.

Every method that changes state is one Lua script, so each is atomic; time is a parameter so
expiry and watchdog logic are testable without sleeping.
"""

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import redis

from analysis.engine import lua
from analysis.engine.keys import Keys
from analysis.models import Gist, HistoryEntry, RankingConfig, StepOutcome
from analysis.settings import Settings


@dataclass(frozen=True)
class ScriptAnswer:
    """A script's code word and its extra values, e.g. ('enqueue', ['4'])."""

    code: str
    values: list[str]


@dataclass(frozen=True)
class BegunStep:
    config: RankingConfig
    state: dict
    target: float
    model: str
    owner: str
    result: list


class AnalysisStore:
    def __init__(self, client: redis.Redis, settings: Settings):
        self.redis = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._scripts = {
            name: client.register_script(getattr(lua, name))
            for name in ("CREATE", "BEGIN_STEP", "HEARTBEAT", "SAVE_SNAPSHOT", "COMMIT_STEP",
                         "STEP_STOP", "PAUSE", "RESUME", "REFINE", "CANCEL", "FORCE_RESUME",
                         "WATCHDOG_CHECK", "ADD_SPEND", "SWEEP_FINAL", "STORAGE_FULL")
        }

    def _run(self, name: str, keys: list[str], args: list) -> ScriptAnswer:
        return self._answer(self._scripts[name](keys=keys, args=args))

    def _queue(self, pipe, name: str, keys: list[str], args: list) -> None:
        """Queue the script on a pipeline; its raw answer comes with the pipeline's results."""
        self._scripts[name](keys=keys, args=args, client=pipe)

    @staticmethod
    def _answer(raw) -> ScriptAnswer:
        if isinstance(raw, int):
            return ScriptAnswer(str(raw), [])
        words = [item.decode() if isinstance(item, bytes) else str(item) for item in raw]
        return ScriptAnswer(words[0], words[1:])

    # --- reads ----------------------------------------------------------------------------
    def load(self, analysis_id: str) -> Gist | None:
        raw = self.redis.hgetall(self.keys.gist(analysis_id))
        if not raw:
            return None
        return Gist.from_hash({k.decode(): v.decode() for k, v in raw.items()})

    def history(self, analysis_id: str) -> list[HistoryEntry]:
        rows = self.redis.lrange(self.keys.history(analysis_id), 0, -1)
        return [HistoryEntry(**json.loads(row)) for row in rows]

    def chain(self, analysis_id: str) -> str | None:
        value = self.redis.hget(self.keys.control(analysis_id), "chain")
        return value.decode() if value else None

    def lease_holder(self, analysis_id: str) -> str | None:
        value = self.redis.get(self.keys.lease(analysis_id))
        return value.decode() if value else None

    def ids_of_owner(self, owner: str, limit: int = 50) -> list[str]:
        return [i.decode() for i in self.redis.zrevrange(self.keys.owner(owner), 0, limit - 1)]

    def all_ids(self, limit: int = 1000) -> list[str]:
        return [i.decode() for i in self.redis.zrevrange(self.keys.analyses(), 0, limit - 1)]

    def live_ids(self) -> list[str]:
        """Every analysis not yet final (and some that became final since the last sweep)."""
        return sorted(i.decode() for i in self.redis.smembers(self.keys.live()))

    def starts_in_last_hour(self, owner: str, now: float) -> int:
        return self.redis.zcount(self.keys.owner(owner), now - 3600, "+inf")

    def active_count(self, owner: str) -> int:
        return self.redis.scard(self.keys.active(owner))

    # --- creation ---------------------------------------------------------------------------
    def create(self, analysis_id: str, owner: str, config: RankingConfig, *, chain: str,
               demo: bool, model: str, now: float, schedule: str = "",
               schedule_prev: str = "", hourly_quota: bool = True) -> ScriptAnswer:
        """CREATE (the analysis joins the live index the watchdog watches), with the owner's
        hourly quota checked atomically (WATCH on the owner's index) unless `hourly_quota` is
        off: answers 'quota' with the starts of the last hour when it is used up. In the same
        transaction the owner's index drops expired analyses and lives as long as their newest
        gist."""
        s, k = self.settings, self.keys
        active = sorted(i.decode() for i in self.redis.smembers(k.active(owner)))
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(k.owner(owner))
                    starts = pipe.zcount(k.owner(owner), now - 3600, "+inf")
                    if hourly_quota and starts >= s.max_starts_per_hour:
                        return ScriptAnswer("quota", [str(starts)])
                    pipe.multi()
                    pipe.zremrangebyscore(k.owner(owner), "-inf", now - s.gist_ttl_s)
                    self._queue(
                        pipe, "CREATE",
                        [k.gist(analysis_id), k.control(analysis_id), k.owner(owner),
                         k.analyses(), k.active(owner), k.events(), k.live(),
                         *(k.gist(i) for i in active)],
                        [analysis_id, owner, now, config.model_dump_json(),
                         config.target_confidence, int(demo), chain, s.gist_ttl_s,
                         s.control_ttl_s, model, s.max_active_per_user, s.events_maxlen,
                         schedule, schedule_prev, *active])
                    pipe.expire(k.owner(owner), s.gist_ttl_s)
                    return self._answer(pipe.execute()[1])
                except redis.WatchError:
                    continue

    # --- the step protocol ------------------------------------------------------------------
    def begin_step(self, analysis_id: str, chain: str, seq: int, attempt: str, *,
                   now: float) -> tuple[ScriptAnswer, BegunStep | None]:
        k, s = self.keys, self.settings
        answer = self._run(
            "BEGIN_STEP",
            [k.control(analysis_id), k.gist(analysis_id), k.lease(analysis_id), k.events()],
            [chain, seq, attempt, s.lease_ms, now, s.control_ttl_s, s.events_maxlen],
        )
        if answer.code != "ok":
            return answer, None
        config, state, target, model, owner, result = answer.values
        begun = BegunStep(RankingConfig.model_validate_json(config), json.loads(state),
                          float(target), model, owner, json.loads(result))
        return ScriptAnswer("ok", []), begun

    def heartbeat(self, analysis_id: str, attempt: str) -> bool:
        answer = self._run("HEARTBEAT", [self.keys.lease(analysis_id)],
                           [attempt, self.settings.lease_ms])
        return answer.code == "1"

    def save_snapshot(self, analysis_id: str, attempt: str, blobs: dict[str, str | bytes]) -> bool:
        """Replace the data snapshot with `blobs` (symbol -> its candle block refs) if `attempt`
        still holds the lease; False when it was fenced out and nothing was written."""
        k = self.keys
        args: list = [attempt, self.settings.gist_ttl_s]
        for symbol, blob in blobs.items():
            args += [symbol, blob]
        answer = self._run("SAVE_SNAPSHOT", [k.lease(analysis_id), k.candles(analysis_id)], args)
        return answer.code == "ok"

    def commit_step(self, analysis_id: str, owner: str, chain: str, seq: int, attempt: str,
                    outcome: StepOutcome, entry: HistoryEntry, *, target_used: float,
                    now: float) -> ScriptAnswer:
        k, s = self.keys, self.settings
        return self._run(
            "COMMIT_STEP",
            [k.control(analysis_id), k.gist(analysis_id), k.lease(analysis_id),
             k.history(analysis_id), k.events(), k.active(owner)],
            [attempt, chain, seq, json.dumps(outcome.state, separators=(",", ":")),
             round(outcome.progress, 6), round(outcome.confidence, 6), int(outcome.done),
             json.dumps(outcome.result, separators=(",", ":")), json.dumps(asdict(entry)),
             target_used, now, s.events_maxlen, outcome.note, s.gist_ttl_s, s.control_ttl_s,
             "RUNNING"],
        )

    def stop_step(self, analysis_id: str, owner: str, chain: str, attempt: str, *, status: str,
                  reason: str, now: float) -> ScriptAnswer:
        """End a step that cannot finish: the analysis becomes PAUSED or FAILED with `reason`."""
        k = self.keys
        return self._run(
            "STEP_STOP",
            [k.control(analysis_id), k.gist(analysis_id), k.lease(analysis_id), k.events(),
             k.active(owner)],
            [attempt, chain, status, reason, now, self.settings.events_maxlen],
        )

    # --- control actions ----------------------------------------------------------------------
    def pause(self, analysis_id: str, *, reason: str, now: float) -> ScriptAnswer:
        k = self.keys
        return self._run("PAUSE", [k.control(analysis_id), k.gist(analysis_id), k.events()],
                         [now, reason, self.settings.events_maxlen, self.settings.control_ttl_s])

    def resume(self, analysis_id: str, *, new_chain: str, now: float) -> ScriptAnswer:
        k, s = self.keys, self.settings
        return self._run(
            "RESUME",
            [k.control(analysis_id), k.gist(analysis_id), k.lease(analysis_id), k.events()],
            [new_chain, now, s.control_ttl_s, s.events_maxlen],
        )

    def refine(self, analysis_id: str, owner: str, *, generation: int, new_chain: str,
               step: float, cap: float, refine_model: str, now: float) -> ScriptAnswer:
        """REFINE; a completed analysis it restarts joins the live index again and its
        snapshot, if any, lives as long as the gist again."""
        k, s = self.keys, self.settings
        answer = self._run(
            "REFINE",
            [k.control(analysis_id), k.gist(analysis_id), k.events(), k.active(owner), k.live()],
            [generation, new_chain, step, cap, refine_model, now, s.control_ttl_s,
             s.events_maxlen])
        if answer.code == "enqueue":
            ttl = self.redis.ttl(k.gist(analysis_id))
            self.redis.expire(k.candles(analysis_id), max(ttl, 60))
        return answer

    def has_snapshot(self, analysis_id: str) -> bool:
        return bool(self.redis.exists(self.keys.candles(analysis_id)))

    def cancel(self, analysis_id: str, owner: str, *, now: float) -> ScriptAnswer:
        k, s = self.keys, self.settings
        return self._run(
            "CANCEL",
            [k.control(analysis_id), k.gist(analysis_id), k.events(), k.active(owner)],
            [now, s.control_ttl_s, s.events_maxlen],
        )

    def force_resume(self, analysis_id: str, *, new_chain: str, now: float) -> ScriptAnswer:
        k, s = self.keys, self.settings
        return self._run(
            "FORCE_RESUME",
            [k.control(analysis_id), k.gist(analysis_id), k.lease(analysis_id), k.events()],
            [new_chain, now, s.control_ttl_s, s.events_maxlen],
        )

    def watchdog_check(self, analysis_id: str, *, now: float, pending: Iterable[str] = (),
                       dry_run: bool = False) -> ScriptAnswer:
        """The one rule for stuck (lua.WATCHDOG_CHECK). `pending`: the deliveries of this
        analysis the broker holds, as 'chain:seq'; `dry_run` answers without acting."""
        k, s = self.keys, self.settings
        return self._run(
            "WATCHDOG_CHECK",
            [k.control(analysis_id), k.gist(analysis_id), k.lease(analysis_id), k.events()],
            [now, s.watchdog_grace_s, s.watchdog_max_attempts, s.events_maxlen,
             int(dry_run), *pending],
        )

    def sweep(self, ids: list[str], *, now: float) -> int:
        """Drop final and expired analyses among `ids` from the live index (a completed one
        keeps its snapshot for REFINE_WINDOW_S), and expired ones from the global index; answers
        how many left the live index."""
        k, s = self.keys, self.settings
        with self.redis.pipeline(transaction=False) as pipe:
            for analysis_id in ids:
                self._queue(pipe, "SWEEP_FINAL",
                            [k.live(), k.gist(analysis_id), k.candles(analysis_id)],
                            [analysis_id, now, s.refine_window_s])
            pipe.zremrangebyscore(k.analyses(), "-inf", now - s.gist_ttl_s)
            answers = pipe.execute()[:-1]
        return sum(self._answer(raw).code == "dropped" for raw in answers)

    def storage_full(self, analysis_id: str, chain: str, seq: int, *, now: float) -> ScriptAnswer:
        """Pause the analysis with the reason 'storage full' and tell admins; runs at Redis's
        memory limit too."""
        k, s = self.keys, self.settings
        entry = json.dumps({"id": analysis_id, "seq": seq, "reason": "storage full", "at": now})
        return self._run(
            "STORAGE_FULL",
            [k.control(analysis_id), k.gist(analysis_id), k.lease(analysis_id), k.events(),
             k.failures()],
            [chain, now, s.events_maxlen, entry])

    def add_spend(self, analysis_id: str, spent: dict[str, int]) -> bool:
        """Add to the analysis's LLM spend counters (Gist.spend); False if the gist is gone."""
        args = [part for name, amount in spent.items() if amount for part in (name, int(amount))]
        if not args:
            return True
        return self._run("ADD_SPEND", [self.keys.gist(analysis_id)], args).code == "ok"

    # --- failures, for admins ---------------------------------------------------------------
    def record_failure(self, analysis_id: str, seq: int, reason: str, *, now: float) -> None:
        entry = json.dumps({"id": analysis_id, "seq": seq, "reason": reason, "at": now})
        with self.redis.pipeline() as pipe:
            pipe.lpush(self.keys.failures(), entry)
            pipe.ltrim(self.keys.failures(), 0, 99)
            pipe.execute()

    def recent_failures(self, limit: int = 20) -> list[dict]:
        return [json.loads(row) for row in self.redis.lrange(self.keys.failures(), 0, limit - 1)]
