"""The analysis store's side of the step protocol (docs/architecture.md): begin, heartbeat,
snapshot, commit, stop, and what a step records on the way (LLM spend, failures for admins).
Each write is one script of `analysis/db/scripts/steps.py`, fenced by the step's lease."""

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from analysis.db.script import Answer
from analysis.db.scripts import steps
from analysis.engine.store_base import StoreBase
from analysis.models import HistoryEntry, RankingConfig, StepOutcome


@dataclass(frozen=True)
class BegunStep:
    config: RankingConfig
    state: dict
    target: float
    model: str
    owner: str
    result: list


class StepWrites(StoreBase):
    def begin_step(
        self, analysis_id: str, chain: str, seq: int, attempt: str, *, now: float
    ) -> tuple[Answer[steps.BeginStep], BegunStep | None]:
        k, s = self.keys, self.settings
        answer = self._call(
            steps.BEGIN_STEP,
            **self._analysis_keys(analysis_id),
            maintenance=k.maintenance(),
            chain=chain,
            seq=seq,
            attempt=attempt,
            lease_ms=s.lease_ms,
            now=now,
            control_ttl_s=s.control_ttl_s,
            events_maxlen=s.events_maxlen,
        )
        if answer.code != steps.BeginStep.OK:
            return answer, None
        config, state, target, model, owner, result = answer.values
        begun = BegunStep(
            RankingConfig.model_validate_json(config),
            json.loads(state),
            float(target),
            model,
            owner,
            json.loads(result),
        )
        return Answer(steps.BeginStep.OK, []), begun

    def heartbeat(self, analysis_id: str, attempt: str) -> bool:
        answer = self._call(
            steps.HEARTBEAT,
            lease=self.keys.lease(analysis_id),
            attempt=attempt,
            lease_ms=self.settings.lease_ms,
        )
        return answer.code == steps.Heartbeat.OK

    def save_snapshot(self, analysis_id: str, attempt: str, blobs: Mapping[str, str | bytes]) -> bool:
        """Replace the data snapshot with `blobs` (symbol -> its candle block refs) if `attempt`
        still holds the lease; False when it was fenced out and nothing was written."""
        pairs: list[object] = [part for symbol, blob in blobs.items() for part in (symbol, blob)]
        answer = self._call(
            steps.SAVE_SNAPSHOT,
            lease=self.keys.lease(analysis_id),
            candles=self.keys.candles(analysis_id),
            attempt=attempt,
            ttl_s=self.settings.gist_ttl_s,
            blobs=pairs,
        )
        return answer.code == steps.SaveSnapshot.OK

    def commit_step(
        self,
        analysis_id: str,
        owner: str,
        chain: str,
        seq: int,
        attempt: str,
        outcome: StepOutcome,
        entry: HistoryEntry,
        *,
        target_used: float,
        now: float,
    ) -> Answer[steps.CommitStep]:
        k, s = self.keys, self.settings
        return self._call(
            steps.COMMIT_STEP,
            control=k.control(analysis_id),
            gist=k.gist(analysis_id),
            lease=k.lease(analysis_id),
            history=k.history(analysis_id),
            events=k.events(),
            active=k.active(owner),
            maintenance=k.maintenance(),
            attempt=attempt,
            chain=chain,
            seq=seq,
            state=json.dumps(outcome.state, separators=(",", ":")),
            progress=round(outcome.progress, 6),
            confidence=round(outcome.confidence, 6),
            done=int(outcome.done),
            result=json.dumps(outcome.result, separators=(",", ":")),
            entry=json.dumps(asdict(entry)),
            target_used=target_used,
            now=now,
            events_maxlen=s.events_maxlen,
            note=outcome.note,
            gist_ttl_s=s.gist_ttl_s,
            control_ttl_s=s.control_ttl_s,
        )

    def stop_step(
        self, analysis_id: str, owner: str, chain: str, attempt: str, *, status: str, reason: str, now: float
    ) -> Answer[steps.StepStop]:
        """End a step that cannot finish: the analysis becomes PAUSED or FAILED with `reason`."""
        k = self.keys
        return self._call(
            steps.STEP_STOP,
            **self._analysis_keys(analysis_id),
            active=k.active(owner),
            attempt=attempt,
            chain=chain,
            status=status,
            reason=reason,
            now=now,
            events_maxlen=self.settings.events_maxlen,
        )

    def storage_full(
        self, analysis_id: str, chain: str, seq: int, *, now: float
    ) -> Answer[steps.StorageFull]:
        """Pause the analysis with the reason 'storage full' and tell admins; runs at Redis's
        memory limit too."""
        k, s = self.keys, self.settings
        entry = json.dumps({"id": analysis_id, "seq": seq, "reason": "storage full", "at": now})
        return self._call(
            steps.STORAGE_FULL,
            **self._analysis_keys(analysis_id),
            failures=k.failures(),
            chain=chain,
            now=now,
            events_maxlen=s.events_maxlen,
            entry=entry,
        )

    def add_spend(self, analysis_id: str, spent: dict[str, int]) -> bool:
        """Add to the analysis's LLM spend counters (Gist.spend); False if the gist is gone."""
        pairs: list[object] = [
            part for name, amount in spent.items() if amount for part in (name, int(amount))
        ]
        if not pairs:
            return True
        answer = self._call(
            steps.ADD_SPEND, gist=self.keys.gist(analysis_id), metrics=self.keys.metrics(), spent=pairs
        )
        return answer.code == steps.AddSpend.OK

    def record_failure(self, analysis_id: str, seq: int, reason: str, *, now: float) -> None:
        entry = json.dumps({"id": analysis_id, "seq": seq, "reason": reason, "at": now})
        with self.redis.pipeline() as pipe:
            pipe.lpush(self.keys.failures(), entry)
            pipe.ltrim(self.keys.failures(), 0, 99)
            pipe.execute()
