"""Maintenance mode, for a deploy: `on` stops new work, `off` resumes exactly what it stopped.

While the flag (`Keys.maintenance`) exists, starts, refines, resumes and schedule firings are
refused or skipped with "marketrank is being updated; try again in a few minutes" (the service
and the schedule service check it), and every running analysis stops at its next step boundary:
COMMIT_STEP answers `paused` instead of continuing, and BEGIN_STEP does not take the lease of a
step that was already queued. Both set the gist's `halt` to 'maintenance' (not a trader's pause),
atomically with the step protocol, so no step is cut short and none runs twice. A trader who
pauses a held analysis takes it over (PAUSE clears the halt): `off` leaves it paused.

`off` clears the flag first, then resumes every live analysis held by that halt through RESUME
(a new chain, the next step), so the chain stays one and an analysis halted by a commit that
raced the `off` is found too.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from analysis.errors import NotAllowed
from analysis.models import GistField
from analysis.service import Actor, AnalysisService

logger = logging.getLogger(__name__)
HALT = "maintenance"


@dataclass(frozen=True)
class MaintenanceStatus:
    """Whether maintenance is on, and the work still moving: a deploy waits for in_flight == 0."""

    on: bool
    since: float | None
    by: str
    halted: int  # live analyses held by maintenance
    leases: int  # steps executing now (leases held)
    queued: int  # step messages the broker holds for analyses without a lease

    @property
    def in_flight(self) -> int:
        return self.leases + self.queued

    def to_dict(self) -> dict:
        return {**asdict(self), "in_flight": self.in_flight}


@dataclass(frozen=True)
class MaintenanceChange:
    changed: bool  # False: it was already as asked
    resumed: list[str]  # `off`: the analyses resumed
    message: str


class MaintenanceService:
    def __init__(self, service: AnalysisService):
        self.service = service
        self.store = service.store

    def on(self, actor: Actor) -> MaintenanceChange:
        """Turn maintenance on; running analyses stop at their next step boundary."""
        _require_admin(actor)
        changed = self.store.set_maintenance(by=actor.user_id, now=self.service.clock())
        if changed:
            logger.warning("maintenance on (by %s): no step begins, nothing new starts", actor.user_id)
        message = (
            "Maintenance on: running analyses stop after their current step; nothing new starts."
            if changed
            else "Maintenance is already on."
        )
        return MaintenanceChange(changed, [], message)

    def off(self, actor: Actor) -> MaintenanceChange:
        """Turn maintenance off and resume exactly the analyses it halted."""
        _require_admin(actor)
        changed = self.store.clear_maintenance()
        resumed = []
        for analysis_id in self._held_ids():
            result = self.service.resume_halted(analysis_id, HALT)
            if result.changed:
                resumed.append(analysis_id)
                logger.info("[%s] resumed after maintenance", analysis_id)
        if changed:
            logger.warning("maintenance off (by %s): %d analyses resumed", actor.user_id, len(resumed))
        state = "Maintenance off" if changed else "Maintenance was off"
        return MaintenanceChange(
            changed or bool(resumed), resumed, f"{state}: {len(resumed)} analyses resumed."
        )

    def status(self) -> MaintenanceStatus:
        since = self.store.maintenance_since()
        ids = self.store.live_ids()
        keys = self.store.keys
        with self.store.redis.pipeline(transaction=False) as pipe:
            for analysis_id in ids:
                pipe.exists(keys.lease(analysis_id))
            leased = {i for i, held in zip(ids, pipe.execute()) if held}
        pending = self.service.pending_steps()
        queued = sum(len(list(steps)) for i, steps in pending.items() if i not in leased)
        return MaintenanceStatus(
            on=since is not None,
            since=since[0] if since else None,
            by=since[1] if since else "",
            halted=len(self._held_ids(ids)),
            leases=len(leased),
            queued=queued,
        )

    def _held_ids(self, ids: list[str] | None = None) -> list[str]:
        """Live analyses whose gist says maintenance holds them."""
        ids = self.store.live_ids() if ids is None else ids
        with self.store.redis.pipeline(transaction=False) as pipe:
            for analysis_id in ids:
                pipe.hget(self.store.keys.gist(analysis_id), GistField.HALT)
            halts = pipe.execute()
        return [i for i, halt in zip(ids, halts) if halt in (HALT, HALT.encode())]


def describe(status: MaintenanceStatus) -> str:
    """One line for the CLI and the bot."""
    head = f"Maintenance is {'on' if status.on else 'off'}"
    if status.on and status.by:
        head += f" (by {status.by})"
    return (
        f"{head}: {status.in_flight} steps in flight ({status.leases} running, "
        f"{status.queued} queued); {status.halted} analyses held by maintenance."
    )


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise NotAllowed("maintenance is for admins")
