"""Maintenance mode (issue #23, item 1): `on` halts every running analysis at its next step
boundary (halt 'maintenance', not a trader's pause) and refuses new work; `off` resumes exactly
what it halted, through RESUME, so every chain stays one clean chain. Through a real Celery
worker and the real CLI (in-process), and, for the races, steps run in this process."""

import contextlib
import json
import time
import uuid

import pytest

from analysis.db.scripts.steps import CommitStep
from analysis.engine.step_runner import run_step
from analysis.errors import AnalysisError, NotAllowed, UnderMaintenance
from analysis.maintenance import HALT, MaintenanceService
from analysis.models import Halt, HistoryEntry, Status, StepOutcome
from analysis.schedules.service import ScheduleService
from analysis.schedules.store import ScheduleStore
from analysis.service import PAUSED_BY_USER, Actor, AnalysisService
from analysis.settings import Settings
from cli import main as cli
from tasks.schedule_beat import default_registrar
from tests.conftest import wait_until
from tests.helpers import QueueDispatcher, assert_history_is_one_clean_chain, noop_config, wait_for_status

ADMIN = Actor("admin-ops", is_admin=True)
MESSAGE = "marketrank is being updated; try again in a few minutes"


@pytest.fixture
def maintenance_off(runtime):
    """Whatever a test does, maintenance is off after it; and before it, no other test's analysis
    is still live in the session's shared Redis (maintenance halts every live analysis, so the
    counts below would include them)."""
    leftovers = AnalysisService(runtime.store, QueueDispatcher())
    for analysis_id in runtime.redis.smembers(runtime.keys.live()):
        with contextlib.suppress(AnalysisError):  # gone or final meanwhile
            leftovers.cancel(analysis_id.decode(), ADMIN)
    yield
    runtime.store.clear_maintenance()


def trader() -> Actor:
    return Actor(f"user-{uuid.uuid4().hex[:8]}")


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["maintenance", *argv])
    return code, capsys.readouterr().out


@pytest.mark.slow
def test_on_halts_four_running_analyses_within_a_step_and_off_resumes_exactly_them(
    worker, service, runtime, factory, actor, capsys, maintenance_off
):
    admin = Actor("admin-view", is_admin=True)
    store = runtime.store
    # Four traders' analyses and a fifth trader's, each within the per-trader limit.
    running = [service.start(noop_config(400), trader()) for _ in range(4)]
    traders = service.start(noop_config(400), actor)
    wait_until(
        lambda: all(store.load(g.id).seq >= 3 for g in [*running, traders]),
        message="every analysis a few steps in",
    )
    assert service.pause(traders.id, actor).changed
    wait_for_status(service, traders.id, actor, ["PAUSED"])
    # A step that held its lease at the pause still commits: read the pause once it has.
    wait_until(lambda: store.lease_holder(traders.id) is None, message="the trader's step in flight")
    trader_paused = store.load(traders.id)

    assert run_cli(capsys, "on")[0] == 0
    # After `on` no step begins: only a step that already holds its lease may still commit.
    seq_at_on = {g.id: store.load(g.id).seq for g in running}
    halted = {g.id: wait_for_status(service, g.id, admin, ["PAUSED"], timeout=30) for g in running}
    for analysis_id, gist in halted.items():
        assert gist.seq <= seq_at_on[analysis_id] + 1, "more than one step after `on`"
        assert (gist.halt, gist.reason) == (HALT, "paused for maintenance: marketrank is being updated")
    # The deploy waits for nothing in flight; status says so, and counts what it holds.
    assert run_cli(capsys, "wait", "--timeout", "30")[0] == 0
    code, out = run_cli(capsys, "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["on"] and status["by"] == cli.CLI_OWNER
    assert (status["in_flight"], status["leases"], status["queued"]) == (0, 0, 0)
    assert status["halted"] == 4
    # Nothing new starts, nothing is resumed, and a schedule's firing is skipped with a note.
    with pytest.raises(UnderMaintenance, match=MESSAGE):
        service.start(noop_config(2), actor)
    with pytest.raises(UnderMaintenance, match=MESSAGE):
        service.resume(traders.id, actor)
    schedules = ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys),
        service,
        factory,
        default_registrar(),
        Settings(schedule_min_interval_s=1),
    )
    made = schedules.add("1h", {"markets": 5, "top_k": 2}, trader())
    fired = schedules.fire(made.id, fire_id="during-maintenance")
    assert fired.code == "skipped" and MESSAGE in fired.note
    after_fire = schedules.store.get(made.id)
    assert (after_fire.skipped, after_fire.runs, after_fire.last_analysis) == (1, 0, "")
    assert {g.seq for g in map(store.load, halted)} == {g.seq for g in halted.values()}, (
        "a halted analysis moved during maintenance"
    )

    code, out = run_cli(capsys, "off")
    assert code == 0 and "4 analyses resumed" in out
    for gist in running:
        done = wait_for_status(service, gist.id, admin, ["COMPLETED"], timeout=90)
        assert done.halt == "" and done.reason == ""
        assert_history_is_one_clean_chain(store.history(gist.id), done.seq)
        assert len({entry.chain for entry in store.history(gist.id)}) == 2, "one chain before, one after"
    # The trader's own pause stays: same step, same reason, still paused.
    kept = store.load(traders.id)
    assert (kept.status, kept.reason, kept.halt, kept.seq) == (
        Status.PAUSED,
        PAUSED_BY_USER,
        Halt.USER,
        trader_paused.seq,
    )
    assert_history_is_one_clean_chain(store.history(traders.id), kept.seq)
    assert not run_cli(capsys, "status", "--json")[1].count('"on": true')


def test_a_trader_who_pauses_a_held_analysis_keeps_it_paused_after_off(
    local_service, queue, runtime, actor, maintenance_off
):
    """PAUSE takes a maintenance halt over: `off` resumes only what maintenance still holds."""
    maintenance = MaintenanceService(local_service)
    taken_over, held = local_service.start(noop_config(3), actor), local_service.start(noop_config(3), actor)
    maintenance.on(ADMIN)
    assert queue.drain(runtime) == ["skip:maintenance", "skip:maintenance"]  # the two INITs
    assert runtime.store.load(taken_over.id).halt == HALT
    assert local_service.pause(taken_over.id, actor).changed
    paused = runtime.store.load(taken_over.id)
    assert (paused.status, paused.reason, paused.halt) == (Status.PAUSED, PAUSED_BY_USER, Halt.USER)
    change = maintenance.off(ADMIN)
    assert change.resumed == [held.id]
    queue.drain(runtime)
    assert runtime.store.load(held.id).status == Status.COMPLETED
    assert_history_is_one_clean_chain(runtime.store.history(held.id), runtime.store.load(held.id).seq)
    assert runtime.store.load(taken_over.id).status == Status.PAUSED


def test_a_step_in_flight_when_maintenance_starts_commits_then_the_chain_stops(
    local_service, queue, runtime, actor, maintenance_off
):
    """The boundary is the commit: the work done is kept, the next step is not enqueued."""
    gist = local_service.start(noop_config(5), actor)
    queue.drain(runtime, limit=2)  # INIT and step 1
    analysis_id, chain, seq = queue.queue.pop(0)
    store = runtime.store
    started = time.time()
    answer, begun = store.begin_step(analysis_id, chain, seq, "attempt-1", now=started)
    assert begun is not None
    MaintenanceService(local_service).on(ADMIN)
    # A duplicate delivery of the same step stays a plain no-op: it does not halt anything.
    assert run_step(runtime, analysis_id, chain, seq).decision == "skip:busy"
    assert store.load(gist.id).status == Status.RUNNING
    outcome = StepOutcome(state={"done_steps": seq}, progress=seq / 5, confidence=0.0, done=False, result=[])
    entry = HistoryEntry(
        seq=seq, chain=chain, attempt="attempt-1", worker="", started_at=started, finished_at=time.time()
    )
    commit = store.commit_step(
        gist.id,
        actor.user_id,
        chain,
        seq,
        "attempt-1",
        outcome,
        entry,
        target_used=0.8,
        now=entry.finished_at,
    )
    assert commit.code == CommitStep.PAUSED
    halted = store.load(gist.id)
    assert (halted.seq, halted.status, halted.halt) == (seq, Status.PAUSED, HALT)
    assert queue.queue == []
    assert MaintenanceService(local_service).off(ADMIN).resumed == [gist.id]
    queue.drain(runtime)
    done = store.load(gist.id)
    assert done.status == Status.COMPLETED
    assert_history_is_one_clean_chain(store.history(gist.id), done.seq)


def test_maintenance_is_for_admins_and_a_second_on_or_off_changes_nothing(
    local_service, runtime, actor, maintenance_off
):
    maintenance = MaintenanceService(local_service)
    with pytest.raises(NotAllowed, match="maintenance is for admins"):
        maintenance.on(actor)
    assert runtime.store.maintenance_since() is None
    assert maintenance.on(ADMIN).changed
    since = runtime.store.maintenance_since()
    again = maintenance.on(Actor("other-admin", is_admin=True))
    assert not again.changed and "already on" in again.message
    assert runtime.store.maintenance_since() == since
    assert maintenance.off(ADMIN).changed
    assert not maintenance.off(ADMIN).changed
