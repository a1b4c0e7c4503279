"""The analysis store's control actions: pause, resume, refine, cancel and force-resume, one
script of `analysis/db/scripts/controls.py` each (the service decides what each answer means)."""

from analysis.db.script import Answer
from analysis.db.scripts import controls
from analysis.engine.store_base import StoreBase


class ControlActions(StoreBase):
    def pause(self, analysis_id: str, *, reason: str, now: float) -> Answer[controls.Pause]:
        k = self.keys
        return self._call(
            controls.PAUSE,
            control=k.control(analysis_id),
            gist=k.gist(analysis_id),
            events=k.events(),
            now=now,
            reason=reason,
            events_maxlen=self.settings.events_maxlen,
            control_ttl_s=self.settings.control_ttl_s,
        )

    def resume(
        self, analysis_id: str, *, new_chain: str, now: float, only_halt: str = ""
    ) -> Answer[controls.Resume]:
        """RESUME; with `only_halt`, only an analysis held by that halt (else KEPT)."""
        s = self.settings
        return self._call(
            controls.RESUME,
            **self._analysis_keys(analysis_id),
            new_chain=new_chain,
            now=now,
            control_ttl_s=s.control_ttl_s,
            events_maxlen=s.events_maxlen,
            only_halt=only_halt,
        )

    def refine(
        self,
        analysis_id: str,
        owner: str,
        *,
        generation: int,
        new_chain: str,
        step: float,
        cap: float,
        refine_model: str,
        now: float,
    ) -> Answer[controls.Refine]:
        """REFINE; a completed analysis it restarts counts like a start (the owner's active
        limit and hourly quota), joins the live index again and its snapshot, if any, lives as
        long as the gist again."""
        k, s = self.keys, self.settings
        answer = self._call(
            controls.REFINE,
            control=k.control(analysis_id),
            gist=k.gist(analysis_id),
            events=k.events(),
            active=k.active(owner),
            live=k.live(),
            owner_index=k.owner(owner),
            restarts=k.restarts(owner),
            generation=generation,
            new_chain=new_chain,
            step=step,
            cap=cap,
            refine_model=refine_model,
            now=now,
            control_ttl_s=s.control_ttl_s,
            events_maxlen=s.events_maxlen,
            max_active=s.max_active_per_user,
            max_starts=s.max_starts_per_hour,
        )
        if answer.code == controls.Refine.ENQUEUE:
            ttl = int(self.redis.ttl(k.gist(analysis_id)))
            self.redis.expire(k.candles(analysis_id), max(ttl, 60))
        return answer

    def cancel(self, analysis_id: str, owner: str, *, now: float) -> Answer[controls.Cancel]:
        k, s = self.keys, self.settings
        return self._call(
            controls.CANCEL,
            control=k.control(analysis_id),
            gist=k.gist(analysis_id),
            events=k.events(),
            active=k.active(owner),
            now=now,
            control_ttl_s=s.control_ttl_s,
            events_maxlen=s.events_maxlen,
        )

    def force_resume(self, analysis_id: str, *, new_chain: str, now: float) -> Answer[controls.ForceResume]:
        s = self.settings
        return self._call(
            controls.FORCE_RESUME,
            **self._analysis_keys(analysis_id),
            new_chain=new_chain,
            now=now,
            control_ttl_s=s.control_ttl_s,
            events_maxlen=s.events_maxlen,
        )
