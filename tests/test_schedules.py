"""Schedules without beat: intervals and cron lines as a user writes them, the diff between two
runs, refusals that write nothing, and what one firing does (start, skip, duplicate, pause), over
the real Redis with the real redbeat entries; runs execute in this process (QueueDispatcher)."""

import uuid

import pytest

from analysis.errors import InvalidConfig, LimitReached, NotAllowed, NotFound
from analysis.models import Halt, RankedMarket, Status
from analysis.schedules.changes import diff_top_k
from analysis.schedules.model import parse_every
from analysis.schedules.service import ScheduleService
from analysis.schedules.store import ScheduleStore
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings
from bot.schedule_cards import ScheduledCards
from tasks.schedule_beat import default_registrar, entry_name
from tests.helpers import redis_snapshot


# --- intervals and cron lines ------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, seconds",
    [("15m", 900), ("1h", 3600), ("4h", 4 * 3600), ("12h", 12 * 3600), ("1d", 86400), ("30s", 30)],
)
def test_intervals(text, seconds):
    assert parse_every(text, min_interval_s=30).interval_s == seconds


def test_cron_lines_in_utc():
    every = parse_every('cron="0 */4 * * *"', min_interval_s=900)
    assert (every.cron, every.interval_s, every.text) == ("0 */4 * * *", 0, "cron=0 */4 * * *")
    assert parse_every("30 9 * * 1-5", min_interval_s=900).cron == "30 9 * * 1-5"


@pytest.mark.parametrize(
    "text, message",
    [
        ("10s", "every 10s is too often: the shortest interval is 900 s"),
        ("14m", "every 14m is too often: the shortest interval is 900 s"),
        ("5x", "'5x' is not an interval"),
        ("", "say how often"),
        ("31d", "too rare"),
        ("cron=*/5 * * * *", "fires every 5 min: the shortest interval is 900 s"),
        ("cron=0,10 * * * *", "fires every 10 min"),
        ("cron=0 */4 * *", "a cron line has 5 fields"),
        ("cron=61 * * * *", "cron minute '61' is outside 0-59"),
        ("cron=0 4 * * MON", "cron day of week 'MON': use numbers"),
    ],
)
def test_bad_intervals_are_explained(text, message):
    with pytest.raises(InvalidConfig, match=message.replace("*", r"\*")):
        parse_every(text, min_interval_s=900)


# --- what changed between two runs ------------------------------------------------------------
def ranked(*symbols: str) -> list[RankedMarket]:
    return [RankedMarket(rank, symbol, 1.0 / rank) for rank, symbol in enumerate(symbols, 1)]


def test_diff_of_two_top_threes():
    old = ranked("BTC", "ETH", "SOL", "XRP", "ADA")
    new = ranked("SOL", "BTC", "ADA", "ETH", "XRP")
    assert diff_top_k(old, new, 3) == {
        "entered": ["ADA"],
        "left": ["ETH"],
        "moved": {"SOL": {"old": 3, "new": 1}, "BTC": {"old": 1, "new": 2}},
    }
    assert diff_top_k(old, old, 3) == {"entered": [], "left": [], "moved": {}}


# --- the service over the real Redis ------------------------------------------------------------
@pytest.fixture
def schedule_settings():
    return Settings(
        schedule_min_interval_s=1,
        max_schedules_per_user=2,
        schedule_max_failures=2,
        max_active_per_user=3,
        allowed_user_ids=[],
        admin_user_ids=[],
    )


@pytest.fixture
def schedules(runtime, queue, factory, schedule_settings):
    analyses = AnalysisService(runtime.store, queue)
    return ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys), analyses, factory, default_registrar(), schedule_settings
    )


def owner() -> Actor:
    return Actor(str(uuid.uuid4().int % 10**9))


def test_bad_schedules_are_refused_and_nothing_is_written(schedules, runtime):
    actor = owner()
    schedules.add("1h", {"markets": 5}, actor)
    schedules.add("1h", {"markets": 6}, actor)
    before = redis_snapshot(runtime.redis)
    cases = [
        (("10x", {"markets": 5}), InvalidConfig, "not an interval"),
        (("cron=* * *", {}), InvalidConfig, "5 fields"),
        (("1h", {"markets": 999}), InvalidConfig, "999 markets is too many"),
        (("1h", {"symbols": ["BTC/USDT", "NOPE/USDT"]}), InvalidConfig, "unknown symbol NOPE/USDT"),
        (("1h", {"markets": 5, "top_k": 9}), InvalidConfig, "top 9 is larger than the 5 markets"),
        (("1h", {"strategy": "llm"}), InvalidConfig, "the llm strategy needs an LLM"),
        (("1h", {"colour": "blue"}), InvalidConfig, "unknown option 'colour'"),
        (("1h", {"markets": 5}), LimitReached, "you already have 2 schedules; the limit is 2"),
    ]
    for (every, options), error, message in cases:
        with pytest.raises(error, match=message):
            schedules.add(every, options, actor)
    with pytest.raises(InvalidConfig, match="notify must be always or changes"):
        schedules.add("1h", {"markets": 5}, owner(), notify="sometimes")
    assert redis_snapshot(runtime.redis) == before


def test_list_and_remove_are_authorized(schedules, runtime):
    alice, bob, admin = owner(), owner(), Actor("admin-1", is_admin=True)
    made = schedules.add("4h", {"markets": 5, "top_k": 2}, alice, chat_id=42)
    entry = runtime.keys.beat_entry(entry_name(made.id))
    assert runtime.redis.exists(entry) and runtime.redis.zscore(runtime.keys.beat_due(), entry)
    assert [s.id for s in schedules.list(alice)] == [made.id]
    assert schedules.list(bob) == []
    with pytest.raises(NotAllowed):
        schedules.list(bob, everyone=True)
    assert made.id in {s.id for s in schedules.list(admin, everyone=True)}
    # An interval's first run is due at once; beat's due set says when.
    assert made.id in schedules.next_runs([made])
    with pytest.raises(NotAllowed, match="belongs to someone else"):
        schedules.remove(made.id, bob)
    with pytest.raises(NotFound, match="schedule ids look like"):
        schedules.remove("../etc", alice)
    assert schedules.remove(made.id, alice).id == made.id
    assert not runtime.redis.exists(entry) and runtime.redis.zscore(runtime.keys.beat_due(), entry) is None
    assert schedules.list(alice) == []
    with pytest.raises(NotFound):
        schedules.remove(made.id, admin)


def test_a_firing_starts_a_run_skips_while_it_runs_and_diffs_the_next(schedules, runtime, queue):
    actor = owner()
    made = schedules.add("1s", {"markets": 6, "top_k": 3}, actor, chat_id=7)
    first = schedules.fire(made.id, fire_id="f1")
    assert first.code == "started"
    # The same beat message delivered again starts nothing.
    assert schedules.fire(made.id, fire_id="f1").code == "duplicate"
    # Due again while the first run has not run yet: skipped with a note, not stacked.
    skipped = schedules.fire(made.id, fire_id="f2")
    assert (
        skipped.code == "skipped" and f"the previous run {first.analysis_id} is still going" in skipped.note
    )
    assert len(runtime.store.ids_of_owner(actor.user_id)) == 1
    queue.drain(runtime)
    run1 = runtime.store.load(first.analysis_id)
    assert run1.status == Status.COMPLETED and run1.schedule == made.id and run1.schedule_prev == ""
    second = schedules.fire(made.id, fire_id="f3")
    queue.drain(runtime)
    run2 = runtime.store.load(second.analysis_id)
    assert run2.schedule_prev == run1.id
    document = schedules.analyses.status_document(run2.id, actor)
    assert document["schedule"] == made.id
    # Same demo data: the same top 3, so nothing changed; the first run has nothing to compare.
    assert document["changes"] == {
        "against": run1.id,
        "entered": [],
        "left": [],
        "moved": {},
        "alerts": {"entered": [], "left": []},
    }
    assert schedules.analyses.status_document(run1.id, actor)["changes"]["against"] is None
    stored = schedules.store.get(made.id)
    assert (stored.runs, stored.skipped, stored.last_analysis, stored.baseline) == (2, 1, run2.id, run1.id)
    # notify=changes: an unchanged run is recorded, not posted; a first run is posted.
    cards = ScheduledCards(schedules)
    assert cards.destination(run2.id) == 7 and cards.destination(run1.id) == 7
    schedules.store.update(made.id, notify="changes")
    assert cards.destination(run2.id) is None and cards.destination(run1.id) == 7
    schedules.pause(made.id, "a reason")
    assert cards.destination(run1.id) is None


def test_an_owner_no_longer_allowed_and_failing_runs_pause_the_schedule(
    schedules, runtime, queue, schedule_settings
):
    actor = owner()
    made = schedules.add("1s", {"markets": 5, "top_k": 2}, actor)
    schedule_settings.allowed_user_ids = [1]  # the owner was removed from ALLOWED_USER_IDS
    paused = schedules.fire(made.id, fire_id="a1")
    assert paused.code == "paused"
    assert schedules.store.get(made.id).reason == "its owner is no longer allowed to use the bot"
    assert runtime.store.ids_of_owner(actor.user_id) == []
    assert schedules.fire(made.id, fire_id="a2").code == "paused"

    # Runs that cannot start (the owner has MAX_ACTIVE_PER_USER analyses going) fail; two in a
    # row (SCHEDULE_MAX_FAILURES) pause the schedule with the reason.
    schedule_settings.allowed_user_ids = []
    busy = owner()
    made = schedules.add("1s", {"markets": 5, "top_k": 2}, busy)
    for _ in range(3):
        schedules.analyses.start(schedules.factory.create_ranking_config(markets=5), busy)
    failed = schedules.fire(made.id, fire_id="b1")
    assert failed.code == "failed" and "3 analyses running" in failed.note
    schedules.fire(made.id, fire_id="b2")
    stored = schedules.store.get(made.id)
    assert stored.state == "paused" and stored.reason.startswith("2 runs in a row failed")
    assert schedules.fire(made.id, fire_id="b3").code == "paused"


def test_resume_rechecks_the_owner_resets_failures_and_resumes_once(
    schedules, runtime, queue, schedule_settings
):
    actor, other, admin = owner(), owner(), Actor("admin-1", is_admin=True)
    made = schedules.add("1s", {"markets": 5, "top_k": 2}, actor, chat_id=7)
    run1 = schedules.fire(made.id, fire_id="r1").analysis_id
    queue.drain(runtime)
    schedule_settings.allowed_user_ids = [1]  # the owner was removed from ALLOWED_USER_IDS
    assert schedules.fire(made.id, fire_id="r2").code == "paused"
    # Still not allowed: it stays paused, for an admin too, and nothing is written.
    before = redis_snapshot(runtime.redis)
    for who in (actor, admin):
        refused = schedules.resume(made.id, who)
        assert not (refused.resumed or refused.already)
        assert refused.message == (
            f"Schedule {made.id} stays paused: its owner {actor.user_id} is not "
            f"allowed to use the bot (ALLOWED_USER_IDS)."
        )
    schedule_settings.allowed_user_ids = []  # allowed again
    with pytest.raises(NotAllowed, match="belongs to someone else"):
        schedules.resume(made.id, other)
    assert redis_snapshot(runtime.redis) == before
    assert schedules.fire(made.id, fire_id="r3").code == "paused"  # a paused schedule fires nothing

    resumed = schedules.resume(made.id, actor)
    assert resumed.resumed and resumed.message == f"Resumed schedule {made.id}."
    stored = schedules.store.get(made.id)
    assert (stored.state, stored.reason, stored.failures) == ("active", "", 0)
    assert stored.note.startswith("resumed ") and stored.note.endswith(f" UTC by {actor.user_id}")
    # Twice (a double tap): one resume; the second is an idempotent no-op that writes nothing.
    before = redis_snapshot(runtime.redis)
    again = schedules.resume(made.id, actor)
    assert again.already and not again.resumed and again.message == f"Schedule {made.id} is already active."
    assert redis_snapshot(runtime.redis) == before
    # It fires again, and the run before the pause is still what the next one is compared with.
    started = schedules.fire(made.id, fire_id="r4")
    assert started.code == "started"
    assert runtime.store.load(started.analysis_id).schedule_prev == run1
    queue.drain(runtime)

    # Paused after failures in a row: a resume (an admin's) starts counting from 0 again.
    for _ in range(3):
        schedules.analyses.start(schedules.factory.create_ranking_config(markets=5), actor)
    schedules.fire(made.id, fire_id="r5")
    schedules.fire(made.id, fire_id="r6")
    stored = schedules.store.get(made.id)
    assert (stored.state, stored.failures) == ("paused", 2)
    assert schedules.resume(made.id, admin).resumed
    assert schedules.store.get(made.id).failures == 0
    assert schedules.fire(made.id, fire_id="r7").code == "failed"  # the owner is still busy
    stored = schedules.store.get(made.id)
    assert (stored.state, stored.failures) == ("active", 1)


def test_a_firing_that_raced_a_resume_leaves_the_resume_standing(schedules, monkeypatch):
    """A firing judges failures from what it read when it began; a resume while it was starting
    its run (seconds on a live exchange) must not be undone by that stale judgement."""
    actor = owner()
    made = schedules.add("1s", {"markets": 5, "top_k": 2}, actor, chat_id=7)
    for _ in range(3):  # the owner is at the limit of active analyses: runs cannot start
        schedules.analyses.start(schedules.factory.create_ranking_config(markets=5), actor)
    assert schedules.fire(made.id, fire_id="r1").code == "failed"
    assert schedules.store.get(made.id).failures == 1
    start = schedules.analyses.start

    def paused_and_resumed_meanwhile(*args, **kwargs):
        schedules.pause(made.id, "the bot may not post in the schedule's chat (Forbidden)")
        assert schedules.resume(made.id, actor).resumed
        return start(*args, **kwargs)  # still at the limit: this run does not start either

    monkeypatch.setattr(schedules.analyses, "start", paused_and_resumed_meanwhile)
    assert schedules.fire(made.id, fire_id="r2").code == "failed"
    stored = schedules.store.get(made.id)
    # Before the resume this was the 2nd failure in a row (the limit): it would pause again.
    assert (stored.state, stored.reason, stored.failures) == ("active", "", 0)
    assert "did not start" in stored.note and stored.last_fire == "r2"


def test_the_second_of_two_racing_resumes_answers_with_the_schedule_as_it_is_now(schedules, monkeypatch):
    """A double tap: both taps read the schedule paused, the first resumes it; the second's answer
    must describe the active schedule (its next run), not the paused one it read."""
    from bot.schedule_views import resume_answer

    actor = owner()
    made = schedules.add("1h", {"markets": 5, "top_k": 2}, actor, chat_id=7)
    schedules.pause(made.id, "the bot may not post in the schedule's chat (Forbidden)")
    get = schedules.get

    def read_then_the_first_tap_resumes(*args, **kwargs):
        seen = get(*args, **kwargs)
        schedules.store.resume(made.id, note="resumed by the first tap")
        return seen

    monkeypatch.setattr(schedules, "get", read_then_the_first_tap_resumes)
    second = schedules.resume(made.id, actor)
    assert second.already and not second.resumed and second.schedule.state == "active"
    next_run = schedules.next_runs([second.schedule]).get(made.id)
    assert next_run is not None
    assert resume_answer(second, next_run).startswith(f"Schedule {made.id} is already active: next run ")
    assert " -." not in resume_answer(second, next_run)


# --- the Remove button's callback data ---------------------------------------------------------
def test_remove_and_resume_buttons_parse_strictly():
    from bot import callbacks
    from bot.callbacks import REMOVE, RESUME, SchedulePress

    data = callbacks.encode_schedule(REMOVE, "q7m2k9xa", everyone=False)
    assert data == "s1:rm:q7m2k9xa:m" and len(data) <= 64
    assert callbacks.parse_schedule(data) == SchedulePress(REMOVE, "q7m2k9xa", False)
    assert callbacks.parse_schedule("s1:rm:q7m2k9xa:a").everyone
    assert callbacks.encode_schedule(RESUME, "q7m2k9xa", everyone=True) == "s1:re:q7m2k9xa:a"
    assert callbacks.parse_schedule("s1:re:q7m2k9xa:m") == SchedulePress(RESUME, "q7m2k9xa", False)
    for forged in [
        "s1:rm:q7m2k9x:m",
        "s1:rm:q7m2k9xa",
        "s1:rm:q7m2k9xa:x",
        "s2:rm:q7m2k9xa:m",
        "s1:rs:q7m2k9xa:m",
        "s1:re:q7m2k9xa",
        "s1:RE:q7m2k9xa:m",
        "s1:re:q7m2k9xa:m:x",
        "s1:rm:Q7M2K9XA:m",
        "s1:rm:q7m2k9xa:m:extra",
        "s1:rm:q7m2k9x1:m",
        "",
        None,
        7,
        "s1:rm:q7m2k9xa:m" + " " * 60,
    ]:
        assert callbacks.parse_schedule(forged) is None, forged


def test_a_new_interval_schedules_first_run_is_due_now_not_one_interval_later(schedules, runtime):
    """#19 item 12: "The first run starts now" must be true. Beat fires what is due within a tick."""
    made = schedules.add("4h", {"markets": 5, "top_k": 2}, owner(), chat_id=42)
    due = schedules.next_runs([made])[made.id]
    assert due <= made.created_at + 1, f"first run due {due - made.created_at:.0f} s after /schedule"
    score = runtime.redis.zscore(runtime.keys.beat_due(), runtime.keys.beat_entry(entry_name(made.id)))
    assert score <= made.created_at + 1  # what beat itself reads
    # A cron line's first run stays at its next matching minute.
    cron = schedules.add('cron="0 4 * * *"', {"markets": 5, "top_k": 2}, owner(), chat_id=42)
    assert schedules.next_runs([cron])[cron.id] > cron.created_at + 1


def test_a_run_its_owner_paused_is_no_failure_but_one_the_watchdog_halted_is(schedules, runtime):
    """The schedule judges its previous run by the gist's halt value, not by its reason text."""
    actor, store, grace = owner(), runtime.store, runtime.settings.watchdog_grace_s
    made = schedules.add("1s", {"markets": 5, "top_k": 2}, actor)
    first = schedules.fire(made.id, fire_id="h1")
    assert schedules.analyses.pause(first.analysis_id, actor).changed
    assert store.load(first.analysis_id).halt == Halt.USER
    second = schedules.fire(made.id, fire_id="h2")
    assert second.code == "started" and schedules.store.get(made.id).failures == 0
    # The second run never moves: the watchdog kicks it, gives up and halts it ('stuck').
    now = store.load(second.analysis_id).last_progress_at
    for _ in range(runtime.settings.watchdog_max_attempts + 1):
        now += grace
        store.watchdog_check(second.analysis_id, now=now)
    assert store.load(second.analysis_id).halt == Halt.STUCK
    assert schedules.fire(made.id, fire_id="h3").code == "started"
    assert schedules.store.get(made.id).failures == 1
