"""The step protocol on a real Redis, steps run in this process so each race can be staged
exactly: stale and duplicate deliveries, fencing, pause/resume/refine/cancel, control expiry."""

import pytest

from analysis.engine.step_runner import run_step
from analysis.models import HistoryEntry, Status, StepOutcome
from analysis.service import AnalysisService
from tests.conftest import wait_until
from tests.helpers import all_at_once, assert_history_is_one_clean_chain, noop_config


def test_a_chain_runs_to_completion_with_one_commit_per_sequence(runtime, queue, local_service, actor):
    gist = local_service.start(noop_config(5), actor)
    assert gist.status == Status.PENDING and queue.queue == [(gist.id, runtime.store.chain(gist.id), 0)]
    assert queue.drain(runtime) == ["continue"] * 5 + ["completed"]
    done = local_service.get(gist.id, actor)
    assert done.status == Status.COMPLETED and done.progress == 1.0
    assert_history_is_one_clean_chain(runtime.store.history(gist.id), 6 - 1 + 0)


def test_stale_chain_and_old_sequence_deliveries_are_no_ops(runtime, queue, local_service, actor):
    gist = local_service.start(noop_config(5), actor)
    chain = runtime.store.chain(gist.id)
    queue.drain(runtime, limit=3)  # seq 0, 1, 2 committed; seq 3 queued
    assert run_step(runtime, gist.id, "not-the-chain", 3).decision == "skip:stale_chain"
    assert run_step(runtime, gist.id, chain, 1).decision == "skip:duplicate"
    assert run_step(runtime, gist.id, chain, 5).decision == "skip:gap"
    assert local_service.get(gist.id, actor).seq == 2
    queue.drain(runtime)
    assert_history_is_one_clean_chain(runtime.store.history(gist.id), 6 - 1)


def test_duplicate_delivery_of_the_current_step_is_a_no_op(runtime, queue, local_service, actor):
    gist = local_service.start(noop_config(3), actor)
    chain = runtime.store.chain(gist.id)
    _, begun = runtime.store.begin_step(gist.id, chain, 0, "first-attempt", now=1.0)
    assert begun is not None
    # The same task delivered again while the first attempt runs: refused by the lease.
    assert run_step(runtime, gist.id, chain, 0).decision == "skip:busy"
    outcome = StepOutcome(state={"done_steps": 0}, progress=0, confidence=0, done=False, result=[])
    entry = HistoryEntry(0, chain, "first-attempt", "test", 1.0, 2.0)
    answer = runtime.store.commit_step(
        gist.id, actor.user_id, chain, 0, "first-attempt", outcome, entry, target_used=0.8, now=2.0
    )
    assert answer.code == "continue"
    # ... and delivered once more after the commit: refused by the sequence.
    assert run_step(runtime, gist.id, chain, 0).decision == "skip:duplicate"
    assert [e.attempt for e in runtime.store.history(gist.id)] == ["first-attempt"]


def test_force_resume_fences_out_the_attempt_holding_the_lease(runtime, queue, local_service, actor):
    admin = type(actor)("admin", is_admin=True)
    gist = local_service.start(noop_config(4), actor)
    queue.drain(runtime, limit=2)  # seq 0 and 1 committed, seq 2 queued
    old_chain = runtime.store.chain(gist.id)
    _, zombie = runtime.store.begin_step(gist.id, old_chain, 2, "zombie", now=1.0)
    assert zombie is not None and runtime.store.lease_holder(gist.id) == "zombie"
    queue.queue.clear()  # the zombie's worker "hangs": its step never finishes

    result = local_service.force_resume(gist.id, admin)
    assert result.changed and "from step 2" in result.message
    assert not runtime.store.heartbeat(gist.id, "zombie")  # the zombie learns it was fenced
    assert queue.drain(runtime) == ["continue", "continue", "completed"]

    late = StepOutcome(state={"done_steps": 99}, progress=1, confidence=1, done=True, result=[])
    entry = HistoryEntry(2, old_chain, "zombie", "test", 1.0, 2.0)
    answer = runtime.store.commit_step(
        gist.id, actor.user_id, old_chain, 2, "zombie", late, entry, target_used=0.8, now=2.0
    )
    assert answer.code == "lost_lease"
    history = runtime.store.history(gist.id)
    assert_history_is_one_clean_chain(history, 4)
    assert "zombie" not in {e.attempt for e in history}
    assert local_service.get(gist.id, actor).state == {"done_steps": 4}


def test_force_resume_is_for_admins_only(runtime, local_service, actor):
    from analysis.errors import NotAllowed

    gist = local_service.start(noop_config(2), actor)
    with pytest.raises(NotAllowed):
        local_service.force_resume(gist.id, actor)


def test_pause_lets_the_step_in_flight_commit_and_starts_no_new_step(runtime, queue, local_service, actor):
    gist = local_service.start(noop_config(5), actor)
    queue.drain(runtime, limit=2)
    chain = runtime.store.chain(gist.id)
    _, begun = runtime.store.begin_step(gist.id, chain, 2, "in-flight", now=1.0)
    assert local_service.pause(gist.id, actor).changed
    assert local_service.pause(gist.id, actor).message == "Already paused."
    outcome = StepOutcome(state={"done_steps": 2}, progress=0.4, confidence=0, done=False, result=[])
    answer = runtime.store.commit_step(
        gist.id,
        actor.user_id,
        chain,
        2,
        "in-flight",
        outcome,
        HistoryEntry(2, chain, "in-flight", "t", 1.0, 2.0),
        target_used=0.8,
        now=2.0,
    )
    assert answer.code == "paused"
    queue.queue.clear()
    assert run_step(runtime, gist.id, chain, 3).decision == "skip:paused"
    paused = local_service.get(gist.id, actor)
    assert (paused.status, paused.seq) == (Status.PAUSED, 2)


def test_resume_while_the_step_still_runs_only_flips_the_state(runtime, queue, local_service, actor):
    gist = local_service.start(noop_config(3), actor)
    queue.drain(runtime, limit=1)
    chain = runtime.store.chain(gist.id)
    queue.queue.clear()
    runtime.store.begin_step(gist.id, chain, 1, "in-flight", now=1.0)
    local_service.pause(gist.id, actor)
    result = local_service.resume(gist.id, actor)
    assert result.changed and queue.queue == []  # no second chain: the running step carries on
    assert runtime.store.chain(gist.id) == chain
    outcome = StepOutcome(state={"done_steps": 1}, progress=0.3, confidence=0, done=False, result=[])
    answer = runtime.store.commit_step(
        gist.id,
        actor.user_id,
        chain,
        1,
        "in-flight",
        outcome,
        HistoryEntry(1, chain, "in-flight", "t", 1.0, 2.0),
        target_used=0.8,
        now=2.0,
    )
    assert answer.code == "continue"


def test_twenty_concurrent_resumes_start_exactly_one_chain(runtime, queue, local_service, actor):
    gist = local_service.start(noop_config(6), actor)
    queue.drain(runtime, limit=3)
    local_service.pause(gist.id, actor)
    queue.drain(runtime)  # the queued step finds the analysis paused
    results = all_at_once(20, lambda: local_service.resume(gist.id, actor))
    assert sum(r.changed for r in results) == 1
    assert sum(r.message == "Already running." for r in results) == 19
    assert len(queue.queue) == 1
    queue.drain(runtime)
    assert_history_is_one_clean_chain(runtime.store.history(gist.id), 6)


def test_refine_raises_the_target_once_per_generation_and_never_above_099(
    runtime, queue, local_service, actor
):
    gist = local_service.start(noop_config(2), actor)
    queue.drain(runtime)
    assert local_service.get(gist.id, actor).status == Status.COMPLETED
    first = local_service.refine(gist.id, actor, generation=0)
    again = local_service.refine(gist.id, actor, generation=0)
    assert first.changed and not again.changed and again.message == "This refine was already applied."
    refined = local_service.get(gist.id, actor)
    assert refined.target == pytest.approx(0.85) and refined.status == Status.RUNNING
    assert len(queue.queue) == 1
    queue.drain(runtime)
    assert local_service.get(gist.id, actor).status == Status.COMPLETED
    for generation in range(1, 6):
        local_service.refine(gist.id, actor, generation=generation)
        queue.drain(runtime)
    capped = local_service.get(gist.id, actor)
    assert capped.target == pytest.approx(0.99)
    assert local_service.refine(gist.id, actor).message == "The target is already at the 0.99 maximum."


def test_cancel_is_final_and_the_step_in_flight_does_not_commit(runtime, queue, local_service, actor):
    gist = local_service.start(noop_config(3), actor)
    queue.drain(runtime, limit=1)
    chain = runtime.store.chain(gist.id)
    runtime.store.begin_step(gist.id, chain, 1, "in-flight", now=1.0)
    assert local_service.cancel(gist.id, actor).changed
    outcome = StepOutcome(state={}, progress=1, confidence=1, done=True, result=[])
    answer = runtime.store.commit_step(
        gist.id,
        actor.user_id,
        chain,
        1,
        "in-flight",
        outcome,
        HistoryEntry(1, chain, "in-flight", "t", 1.0, 2.0),
        target_used=0.8,
        now=2.0,
    )
    assert answer.code == "final"
    cancelled = local_service.get(gist.id, actor)
    assert (cancelled.status, cancelled.seq) == (Status.CANCELLED, 0)
    assert not local_service.resume(gist.id, actor).changed
    assert "already cancelled" in local_service.cancel(gist.id, actor).message


def test_an_expired_control_key_parks_the_analysis_until_the_user_resumes(
    runtime, queue, local_service, actor
):
    gist = local_service.start(noop_config(3), actor)
    queue.drain(runtime, limit=1)
    runtime.redis.delete(runtime.keys.control(gist.id))  # as if the 24 h TTL ran out
    assert queue.drain(runtime) == ["skip:expired"]
    parked = local_service.get(gist.id, actor)
    assert (parked.status, parked.reason) == (Status.PAUSED, "control expired")
    assert local_service.resume(gist.id, actor).changed
    assert queue.drain(runtime)[-1] == "completed"


def test_the_watchdog_kicks_a_silent_analysis_then_gives_up_with_a_reason(
    runtime, queue, local_service, actor
):
    gist = local_service.start(noop_config(3), actor)
    queue.queue.clear()  # INIT was "lost" (e.g. the broker dropped it)
    created = local_service.get(gist.id, actor).last_progress_at
    store, grace = runtime.store, runtime.settings.watchdog_grace_s
    assert store.watchdog_check(gist.id, now=created + grace / 2).code == "recent"
    kick = store.watchdog_check(gist.id, now=created + grace + 1)
    assert kick.code == "kick" and kick.values[:2] == ["0", runtime.store.chain(gist.id)]
    now = created + grace + 1
    for _ in range(runtime.settings.watchdog_max_attempts - 1):
        now += grace + 1
        assert store.watchdog_check(gist.id, now=now).code == "kick"
    gave_up = store.watchdog_check(gist.id, now=now + grace + 1)
    assert gave_up.code == "gave_up"
    parked = local_service.get(gist.id, actor)
    assert parked.status == Status.PAUSED and parked.reason.startswith("stuck: no progress after 5")


def test_a_user_cannot_act_on_someone_elses_analysis(runtime, local_service, actor):
    from analysis.errors import NotAllowed, NotFound

    gist = local_service.start(noop_config(2), actor)
    stranger = type(actor)("stranger")
    for action in (
        local_service.get,
        local_service.pause,
        local_service.resume,
        local_service.cancel,
        local_service.refine,
    ):
        with pytest.raises(NotAllowed, match="belongs to someone else"):
            action(gist.id, stranger)
    with pytest.raises(NotFound):
        local_service.get("zzzzzzzzzz", actor)
    assert local_service.get(gist.id[:5], actor).id == gist.id  # a short id works for its owner


def test_the_per_user_limit_of_active_analyses(runtime, local_service, actor):
    from analysis.errors import LimitReached

    for _ in range(runtime.settings.max_active_per_user):
        local_service.start(noop_config(2), actor)
    with pytest.raises(LimitReached, match="the limit is 3"):
        local_service.start(noop_config(2), actor)


def test_the_lease_keeper_keeps_a_long_step_leased_and_stops_when_fenced(runtime, queue, actor):
    import time

    from analysis.engine.lease_keeper import LeaseKeeper
    from analysis.engine.store import AnalysisStore

    store = AnalysisStore(runtime.redis, runtime.settings.model_copy(update={"lease_ms": 500}))
    service = AnalysisService(store, queue)
    gist = service.start(noop_config(2), actor)
    chain = store.chain(gist.id)
    store.begin_step(gist.id, chain, 0, "long-step", now=time.time())
    keeper = LeaseKeeper(interval_s=0.1)
    with keeper.hold(gist.id, "long-step", lambda: store.heartbeat(gist.id, "long-step")):
        time.sleep(0.8)  # longer than the 500 ms lease
        assert store.lease_holder(gist.id) == "long-step"
    wait_until(
        lambda: store.lease_holder(gist.id) is None,
        timeout=2,
        message="the lease to run out once no one renews it",
    )
