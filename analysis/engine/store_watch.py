"""The analysis store's side of the watchdog (analysis/engine/watch.py): the one rule for stuck,
acted on or only read, and the sweep of the live index; the scripts of
`analysis/db/scripts/watch.py`."""

from collections.abc import Iterable

from analysis.db.script import Answer
from analysis.db.scripts import watch
from analysis.engine.store_base import StoreBase


class WatchActions(StoreBase):
    def watchdog_check(
        self, analysis_id: str, *, now: float, pending: Iterable[str] = ()
    ) -> Answer[watch.WatchdogCheck]:
        """The watchdog acting on the one rule for stuck (the prologue's stuck_rule). `pending`: the
        deliveries of this analysis the broker holds, as 'chain:seq'."""
        s = self.settings
        return self._call(
            watch.WATCHDOG_CHECK,
            **self._analysis_keys(analysis_id),
            now=now,
            grace_s=s.watchdog_grace_s,
            max_attempts=s.watchdog_max_attempts,
            events_maxlen=s.events_maxlen,
            pending=list(pending),
        )

    def stuck_check(
        self, analysis_id: str, *, now: float, grace_s: float | None = None, pending: Iterable[str] = ()
    ) -> Answer[watch.StuckCheck]:
        """The watchdog's rule, read only: is this analysis stuck (or halted by the watchdog)?
        `pending`: as for watchdog_check."""
        k = self.keys
        grace_s = self.settings.watchdog_grace_s if grace_s is None else grace_s
        return self._call(
            watch.STUCK_CHECK,
            control=k.control(analysis_id),
            gist=k.gist(analysis_id),
            lease=k.lease(analysis_id),
            now=now,
            grace_s=grace_s,
            pending=list(pending),
        )

    def sweep(self, ids: list[str], *, now: float) -> int:
        """Drop final and expired analyses among `ids` from the live index (a completed one
        keeps its snapshot for REFINE_WINDOW_S), and expired ones from the global index; answers
        how many left the live index."""
        k, s = self.keys, self.settings
        with self.redis.pipeline(transaction=False) as pipe:
            for analysis_id in ids:
                self._queue(
                    pipe,
                    watch.SWEEP_FINAL,
                    live=k.live(),
                    gist=k.gist(analysis_id),
                    candles=k.candles(analysis_id),
                    id=analysis_id,
                    now=now,
                    refine_window_s=s.refine_window_s,
                )
            pipe.zremrangebyscore(k.analyses(), "-inf", now - s.gist_ttl_s)
            answers = pipe.execute()[:-1]
        return sum(watch.SWEEP_FINAL.answer(raw).code == watch.SweepFinal.DROPPED for raw in answers)
