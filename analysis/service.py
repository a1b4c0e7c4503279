"""The analysis service: what the fronts (bot, CLI) call. Every action is one atomic script,
idempotent, checked against the caller, and says plainly when it did nothing and why."""

from __future__ import annotations

import builtins
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from analysis.db.replication import wait_for_replica
from analysis.db.script import A, Answer
from analysis.db.scripts.creation import Create
from analysis.decisions import (
    ACTIVE_LIMIT_TEXT,
    CANCEL_DECISIONS,
    FORCE_RESUME_DECISIONS,
    HOURLY_QUOTA_TEXT,
    PAUSE_DECISIONS,
    REFINE_CAP,
    REFINE_DECISIONS,
    REFINE_STEP,
    RESUME_DECISIONS,
    Decision,
)
from analysis.engine import watch
from analysis.engine.events import EventReader
from analysis.engine.store import AnalysisStore, QuotaUsed
from analysis.errors import InvalidConfig, LimitReached, NotAllowed, NotFound, UnderMaintenance, quoted
from analysis.explain import explain_document
from analysis.ids import ID_ALPHABET, new_id
from analysis.models import REFINE_MODEL, ActionResult, Gist, GistField, RankingConfig, Status, to_jsonable
from analysis.schedules.changes import run_changes

logger = logging.getLogger(__name__)

ID_LENGTH = 10
ID_PATTERN = re.compile(rf"^[{ID_ALPHABET}]{{4,{ID_LENGTH}}}$")
PAUSED_BY_USER = "paused by user"


@dataclass(frozen=True)
class CardView:
    gist: Gist
    changes: dict | None  # run_changes() for a run of a schedule, else None


class StepDispatcher(Protocol):
    """Enqueues step `seq` of a chain (seq 0 is INIT). `tasks/` implements it with Celery."""

    def enqueue_step(self, analysis_id: str, chain: str, seq: int) -> None: ...


@dataclass(frozen=True)
class Actor:
    """Who asks: a Telegram user id, a CLI owner name; admins may act on any analysis."""

    user_id: str
    is_admin: bool = False


def new_analysis_id() -> str:
    return new_id(ID_LENGTH)


def new_chain_token() -> str:
    return uuid.uuid4().hex[:16]


class AnalysisService:
    def __init__(
        self,
        store: AnalysisStore,
        dispatcher: StepDispatcher,
        *,
        clock: Callable[[], float] = time.time,
        pending_steps: watch.PendingSteps = watch.no_broker,
    ):
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.pending_steps = pending_steps  # the broker's view, for `stuck` (tasks/ops.py)

    # --- starting and reading -----------------------------------------------------------------
    def start(
        self, config: RankingConfig, actor: Actor, *, schedule: str = "", schedule_prev: str = ""
    ) -> Gist:
        """Store and enqueue a new analysis; `schedule` names the schedule that started it and
        `schedule_prev` that schedule's previous completed run (its changes are against it)."""
        self.refuse_during_maintenance()
        analysis_id, chain = new_analysis_id(), new_chain_token()
        try:
            # A schedule's runs are bounded by the schedule (its own limits), not the hourly quota.
            answer = self.store.create(
                analysis_id,
                actor.user_id,
                config,
                chain=chain,
                demo=config.demo,
                model="",
                now=self.clock(),
                schedule=schedule,
                schedule_prev=schedule_prev,
                hourly_quota=not schedule,
            )
        except redis.OutOfMemoryError:
            logger.error("[%s] not started: Redis is at its memory limit", analysis_id)
            raise LimitReached(
                "storage is full: no new analysis can start now; the admins are told, try again later"
            ) from None
        settings = self.store.settings
        if isinstance(answer, QuotaUsed):
            raise LimitReached(HOURLY_QUOTA_TEXT.format(answer.starts, settings.max_starts_per_hour))
        if answer.code == Create.LIMIT:
            raise LimitReached(ACTIVE_LIMIT_TEXT.format(answer.values[0], settings.max_active_per_user))
        if answer.code == Create.EXISTS:  # two ids alike out of 32^10: a bug, not chance
            raise RuntimeError(f"analysis {analysis_id} exists already")
        self._enqueue(analysis_id, chain, 0)
        self._on_a_replica(analysis_id, "start")
        pruned = self.store.prune_finished(actor.user_id, keep=settings.max_finished_per_user)
        if pruned:
            logger.info(
                "[%s] started; %d oldest finished analyses of %s deleted (MAX_FINISHED_PER_USER=%d): %s",
                analysis_id,
                len(pruned),
                actor.user_id,
                settings.max_finished_per_user,
                ", ".join(pruned),
            )
        gist = self.store.load(analysis_id)
        assert gist is not None
        return gist

    def get(self, analysis_id: str, actor: Actor) -> Gist:
        """The analysis, if it exists and the actor owns it (or is an admin). Accepts a unique
        prefix of at least 4 characters of the actor's own analyses."""
        gist = self.store.load(self.resolve_id(analysis_id, actor))
        if gist is None:
            raise NotFound(f"no analysis {quoted(analysis_id)}")
        if gist.owner != actor.user_id and not actor.is_admin:
            raise NotAllowed("that analysis belongs to someone else")
        return gist

    def status_document(self, analysis_id: str, actor: Actor) -> dict:
        gist = self.get(analysis_id, actor)
        document = to_jsonable(gist, self.store.history(gist.id), self.store.chain(gist.id))
        # A run of a schedule: which one, and what changed since its previous completed run.
        document["schedule"] = gist.schedule or None
        document["changes"] = run_changes(self.store, gist) if gist.schedule else None
        # Why each market ranks where it does, and what INIT found in the data (docs/explain.md).
        document["explain"] = explain_document(gist)
        document["data_quality"] = document["explain"]["data_quality"]
        return document

    def explain(self, analysis_id: str, actor: Actor, symbol: str | None = None) -> dict:
        """Why each ranked market (or only `symbol`) ranks where it does, and the data quality;
        NotFound for a symbol not in the ranking."""
        return explain_document(self.get(analysis_id, actor), symbol)

    # --- for the bot's cards: what it was asked to follow (its handlers checked the actor) -----
    def card_view(self, analysis_id: str) -> CardView | None:
        """What a card shows: the gist and, for a run of a schedule, what changed since its
        previous completed run; None when the analysis is gone."""
        gist = self.store.load(analysis_id)
        if gist is None:
            return None
        return CardView(gist, run_changes(self.store, gist) if gist.schedule else None)

    def close(self) -> None:
        """Close the Redis connections (a front at shutdown)."""
        self.store.redis.close()

    def schedule_of(self, analysis_id: str) -> str:
        """The schedule the analysis is a run of ('' for none): cheap, asked on every event."""
        return self.store.schedule_of(analysis_id)

    def events(
        self, client: Any, *, group: str, consumer: str, claim_idle_ms: int | None = None
    ) -> EventReader:
        """A reader of the progress events over an asyncio Redis client, in a consumer group;
        with `claim_idle_ms`, it takes over entries other consumers left that long."""
        return EventReader(
            client, self.store.keys, group=group, consumer=consumer, claim_idle_ms=claim_idle_ms
        )

    def list(self, actor: Actor, owner: str | None = None, limit: int = 20) -> list[Gist]:
        owner = owner if owner is not None and actor.is_admin else actor.user_id
        gists = (self.store.load(i) for i in self.store.ids_of_owner(owner, limit))
        return [g for g in gists if g is not None]

    def resolve_id(self, text: str, actor: Actor) -> str:
        text = text.strip().lower() if isinstance(text, str) else ""
        if not ID_PATTERN.match(text):
            raise NotFound(f"no analysis {quoted(text)}: ids look like k3f9a2xq7m")
        if len(text) == ID_LENGTH:
            return text
        candidates = self.store.ids_of_owner(actor.user_id, limit=200)
        if actor.is_admin:
            candidates += self.store.all_ids(limit=1000)
        matches = {c for c in candidates if c.startswith(text)}
        if len(matches) != 1:
            raise NotFound(
                f"no analysis {quoted(text)}"
                if not matches
                else f"{quoted(text)} matches several analyses; give more of the id"
            )
        return matches.pop()

    # --- control actions --------------------------------------------------------------------
    def pause(self, analysis_id: str, actor: Actor) -> ActionResult:
        gist = self.get(analysis_id, actor)
        answer = self.store.pause(gist.id, reason=PAUSED_BY_USER, now=self.clock())
        return self._decide("pause", gist.id, answer, PAUSE_DECISIONS)

    def resume(self, analysis_id: str, actor: Actor) -> ActionResult:
        gist = self.get(analysis_id, actor)
        self.refuse_during_maintenance()
        chain = new_chain_token()
        answer = self.store.resume(gist.id, new_chain=chain, now=self.clock())
        return self._decide("resume", gist.id, answer, RESUME_DECISIONS, chain)

    def resume_halted(self, analysis_id: str, halt: str) -> ActionResult:
        """Resume the analysis only if `halt` holds it (maintenance off): a trader's own pause
        is left alone (KEPT). Through RESUME, so the chain stays one."""
        chain = new_chain_token()
        answer = self.store.resume(analysis_id, new_chain=chain, now=self.clock(), only_halt=halt)
        return self._decide("resume", analysis_id, answer, RESUME_DECISIONS, chain)

    def refuse_during_maintenance(self) -> None:
        """Starts, refines and resumes wait while maintenance is on (a deploy)."""
        if self.store.maintenance_since() is not None:
            raise UnderMaintenance()

    def refine(self, analysis_id: str, actor: Actor, generation: int | None = None) -> ActionResult:
        """Raise the target by 0.05 (at most 0.99) once per refine generation; `generation` is the
        one the caller saw (a button carries it), so a duplicate tap does nothing."""
        gist = self.get(analysis_id, actor)
        self.refuse_during_maintenance()
        generation = gist.refine_gen if generation is None else generation
        if isinstance(generation, bool) or not isinstance(generation, int):
            raise InvalidConfig(f"a refine generation is a whole number, not {quoted(generation)}")
        if gist.status == Status.COMPLETED and not self.store.has_snapshot(gist.id):
            days = self.store.settings.refine_window_s / 86400
            raise LimitReached(
                f"this analysis finished too long ago to refine (its candles are "
                f"kept {days:g} days after it completes): start a new one"
            )
        chain = new_chain_token()
        answer = self.store.refine(
            gist.id,
            gist.owner,
            generation=generation,
            new_chain=chain,
            step=REFINE_STEP,
            cap=REFINE_CAP,
            refine_model=REFINE_MODEL if gist.config.strategy == "llm" else "",
            now=self.clock(),
        )
        return self._decide("refine", gist.id, answer, REFINE_DECISIONS, chain)

    def cancel(self, analysis_id: str, actor: Actor) -> ActionResult:
        gist = self.get(analysis_id, actor)
        answer = self.store.cancel(gist.id, gist.owner, now=self.clock())
        return self._decide("cancel", gist.id, answer, CANCEL_DECISIONS)

    def force_resume(self, analysis_id: str, actor: Actor) -> ActionResult:
        """Admin rescue: a new chain from the last checkpoint, fencing out any zombie step."""
        if not actor.is_admin:
            raise NotAllowed("force-resume is for admins")
        gist = self.get(analysis_id, actor)
        chain = new_chain_token()
        answer = self.store.force_resume(gist.id, new_chain=chain, now=self.clock())
        return self._decide("force_resume", gist.id, answer, FORCE_RESUME_DECISIONS, chain)

    # --- for admins -------------------------------------------------------------------------
    def stuck(self, grace_s: float | None = None) -> builtins.list[Gist]:
        """Analyses the watchdog's rule finds stuck (should run, no lease, next step not waiting
        in the broker, no progress nor kick within the grace period), and those it halted (gave
        up on, or parked on a lost control): analysis.engine.watch, read only."""
        found = []
        now = self.clock()
        for analysis_id in watch.stuck(self.store, self.pending_steps, now, grace_s=grace_s):
            gist = self.store.load(analysis_id)
            if gist is not None:
                found.append(gist)
        return found

    def recent_failures(self, limit: int = 20) -> builtins.list[dict]:
        """The latest failed or paused-by-error steps, newest first, for admins."""
        return self.store.recent_failures(limit)

    def overview(self) -> Counter:
        """Live analyses (not final) by status: every one, from the live index."""
        key = self.store.keys.gist
        with self.store.redis.pipeline(transaction=False) as pipe:
            for analysis_id in self.store.live_ids():
                pipe.hget(key(analysis_id), GistField.STATUS)
            statuses = pipe.execute()
        return Counter(s.decode() for s in statuses if s is not None and not Status(s.decode()).is_final)

    # --- helpers ----------------------------------------------------------------------------
    def _enqueue(self, analysis_id: str, chain: str, seq: int) -> None:
        try:
            self.dispatcher.enqueue_step(analysis_id, chain, seq)
        except Exception:
            # The analysis is stored and marked running: the watchdog enqueues it once the
            # broker is back, so nothing is lost.
            logger.exception(
                "[%s chain=%s seq=%s] enqueue failed; the watchdog will retry", analysis_id, chain[:8], seq
            )

    def _on_a_replica(self, analysis_id: str, action: str) -> None:
        """With failover, what the trader is told was done must reach a replica, or the switch
        can undo it (WAIT, up to REDIS_WAIT_MS; a warning if none confirms)."""
        settings = self.store.settings
        wait_for_replica(
            self.store.redis,
            self.store.keys.replication_probe(),
            settings.redis_wait_ms if settings.redis_sentinels else 0,
            f"[{analysis_id}] {action}",
        )

    def _decide(
        self, action: str, analysis_id: str, answer: Answer[A], table: dict[A, Decision], chain: str = ""
    ) -> ActionResult:
        decision = table[answer.code]
        if decision.not_found:
            raise NotFound(f"no analysis {analysis_id}")
        if decision.refused:
            logger.info("[%s] %s refused: %s", analysis_id, action, answer.code)
            raise LimitReached(decision.render(answer.values))
        if decision.enqueue:
            self._enqueue(analysis_id, chain, int(answer.values[0]))
        if decision.changed:
            self._on_a_replica(analysis_id, action)
        return ActionResult(
            action,
            analysis_id,
            decision.changed,
            decision.render(answer.values),
            self.store.load(analysis_id),
            already=decision.already,
        )
