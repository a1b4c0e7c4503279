"""Schedules end to end: real `celery beat` processes with the redbeat scheduler, the session's
real worker and Redis, and the real bot against the local Bot API server. What a trader sees in the
chat, what an operator sees in beat's logs."""

import os
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from redbeat import RedBeatSchedulerEntry

from analysis.engine.runtime import Runtime
from analysis.service import Actor
from analysis.settings import Settings
from sandbox import BotApiServer
from tasks.celery_app import app
from tasks.schedule_beat import entry_name
from tasks.schedule_tasks import schedule_service
from tests.conftest import wait_until
from tests.stack import Beat
from tests.test_bot import (  # noqa: F401 (the bot tests' fixtures, shared)
    RunningBot,
    analysis_id_of,
    api,
    ask,
    bot_settings,
    people,
    status_of,
    wait_for_card,
    wait_for_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("worker")]
SENT = re.compile(r"^(\S+ \S+) .*Sending due task (\S+)", re.M)


@pytest.fixture
def beats(tmp_path):
    """Start beats (each its own log); all stopped, and every schedule removed, afterwards."""
    started: list[Beat] = []

    def start(name: str) -> Beat:
        folder = tmp_path / name
        folder.mkdir()
        beat = Beat({**os.environ, "BEAT_MAX_LOOP_S": "1"}, folder).start()
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.stop()
    service = schedule_service(Runtime(Settings()))
    for schedule in service.list(Actor("cleanup", is_admin=True), everyone=True):
        service.remove(schedule.id, Actor("cleanup", is_admin=True))


def sends(beat: Beat, schedule_id: str) -> list[float]:
    """When this beat sent the schedule's task (from its log)."""
    text = beat.log_path.read_text()
    return [
        datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for at, name in SENT.findall(text)
        if name == entry_name(schedule_id)
    ]


def ticks(beat: Beat) -> int:
    """How many times this beat sent its watchdog pass (every WATCHDOG_INTERVAL_S, 1 s here)."""
    return sum(1 for _, name in SENT.findall(beat.log_path.read_text()) if name == "watchdog")


def holds_lock(beat: Beat) -> bool:
    return "beat: Acquired lock" in beat.log_path.read_text()


def test_two_beats_fire_once_runs_never_stack_and_schedules_outlive_beat(beats, runtime, llm_server, request):
    # Every judge answer takes 0.4 s, so a run of the llm strategy (several rounds of calls) lasts
    # well over the 1 s interval on an idle machine too: firings find the previous run going.
    llm_server.delay_next(10**6, 0.4)
    request.addfinalizer(llm_server.clear_faults)
    service = schedule_service(
        Runtime(
            Settings(schedule_min_interval_s=1, openai_api_key="sk-test", openai_base_url=llm_server.base_url)
        )
    )
    owner = Actor("beat-test")
    first, second = beats("first"), beats("second")
    wait_until(lambda: holds_lock(first) or holds_lock(second), timeout=10, message="a beat to take the lock")
    leader, standby = (first, second) if holds_lock(first) else (second, first)

    # A run takes longer than the 1 s interval, so most firings find it going.
    made = service.add("1s", {"markets": 10, "top_k": 3, "strategy": "llm"}, owner)
    # Flower shows the schedule's task as `schedule=<id>` (and its INIT adds the same words).
    entry = RedBeatSchedulerEntry.from_key(runtime.keys.beat_entry(entry_name(made.id)), app=app)
    assert entry.options["argsrepr"] == f"schedule={made.id}" and entry.args == [made.id]
    wait_until(lambda: service.store.get(made.id).runs >= 3, timeout=40, message="three runs")
    assert sends(standby, made.id) == [] and not holds_lock(standby)
    fired = sends(leader, made.id)
    assert all(b - a >= 0.9 for a, b in zip(fired, fired[1:])), fired  # never twice for one due time

    # Every firing either starts a run or is skipped, once: none lost, none counted twice.
    def outcomes() -> int:
        stored = service.store.get(made.id)
        return stored.runs + stored.skipped

    wait_until(lambda: outcomes() >= len(fired), timeout=20, message="every firing's outcome")
    assert outcomes() <= len(sends(leader, made.id))
    assert service.store.get(made.id).skipped >= 1
    runs = sorted(
        (runtime.store.load(i) for i in runtime.store.ids_of_owner(owner.user_id)), key=lambda g: g.created_at
    )
    assert [g.schedule for g in runs] == [made.id] * len(runs)
    for before, after in zip(runs, runs[1:]):  # not stacked: a run starts after the previous ended
        assert after.created_at >= runtime.store.history(before.id)[-1].finished_at
        assert after.schedule_prev == before.id  # each diffed against the previous completed run

    # The beat holding the lock stops: the standby takes over the same schedule from Redis.
    leader.stop()
    wait_until(lambda: len(sends(standby, made.id)) >= 2, timeout=20, message="the standby to fire")
    # All beats gone, a new one started: the schedule is still there and still fires.
    standby.stop()
    restarted = beats("restarted")
    wait_until(lambda: len(sends(restarted, made.id)) >= 2, timeout=20, message="a restarted beat to fire")
    # Removed: beat fires it no more.
    service.remove(made.id, owner)
    # Beat's own watchdog entry (every second) is the clock: a send already on its way when the
    # schedule was removed has gone out two ticks later, and two more ticks pass with none.
    at_removal = ticks(restarted)
    wait_until(lambda: ticks(restarted) >= at_removal + 2, timeout=20, message="two ticks")
    count = len(sends(restarted, made.id))
    wait_until(lambda: ticks(restarted) >= at_removal + 4, timeout=20, message="two more ticks")
    assert len(sends(restarted, made.id)) == count


def reply_message(api: BotApiServer, user_id: int, text: str):
    """The bot's reply to `text` sent in the user's chat, as the chat shows it."""
    mark = api.mark()
    api.send_message(user_id, text)
    call = api.wait_for_call(
        "sendMessage",
        lambda c: c.params.get("chat_id") == user_id and "schedules" in c.result["text"],
        since=mark,
        timeout=10,
    )
    return api.message(user_id, call.result["message_id"])


def csv_folder(folder: Path, source: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).symlink_to(source / name)


@pytest.mark.shared_data
def test_scheduled_runs_post_cards_with_what_changed(beats, api, people, tmp_path, shared_data_dir):
    data = tmp_path / "csv"
    data.mkdir()
    pool = sorted(p.name for p in shared_data_dir.glob("*_USDT-1h.csv"))
    csv_folder(data, shared_data_dir, pool[:5])
    settings = bot_settings(api, people, market_data=f"csv:{data}", schedule_min_interval_s=1)
    beats("beat")
    with RunningBot(api, settings) as bot:
        reply = ask(api, people.trader, "/schedule 6s top=3")
        schedule_id = re.search(r"Scheduled (\w{8}): every 6s \(UTC\)", reply)[1]
        assert "5 markets · 1h · score · top 3" in reply

        card = wait_for_card(api, people.trader, 0, timeout=20)
        card = wait_for_status(api, people.trader, card.message_id, "Completed")
        assert f"Scheduled run of {schedule_id}" in card.text
        assert "First run of this schedule" in card.text
        run1 = bot.service.store.load(analysis_id_of(card))
        assert run1.schedule == schedule_id

        # The market moves on: run 1's leader leaves the data source, two markets join it.
        leader = run1.result[0].symbol
        (data / f"{leader.replace('/', '_')}-1h.csv").unlink()
        csv_folder(data, shared_data_dir, pool[5:7])
        card = wait_for_card(api, people.trader, 1, timeout=30)
        card = wait_for_status(api, people.trader, card.message_id, "Completed")
        run2 = bot.service.store.load(analysis_id_of(card))
        assert run2.schedule_prev == run1.id

        old = [item.symbol for item in sorted(run1.result, key=lambda i: i.rank)[:3]]
        new = [item.symbol for item in sorted(run2.result, key=lambda i: i.rank)[:3]]
        entered, left = [s for s in new if s not in old], [s for s in old if s not in new]
        moved = {
            s: {"old": old.index(s) + 1, "new": new.index(s) + 1}
            for s in new
            if s in old and old.index(s) != new.index(s)
        }
        document = bot.service.status_document(run2.id, Actor(str(people.trader)))
        assert document["schedule"] == schedule_id
        assert document["changes"]["against"] == run1.id
        assert (document["changes"]["entered"], document["changes"]["left"]) == (entered, left)
        assert document["changes"]["moved"] == moved
        assert leader in left and entered
        assert "New in the top: " + ", ".join(entered) in card.text
        assert "Left the top: " + ", ".join(left) in card.text
        for symbol, move in moved.items():
            assert f"{symbol} {move['old']}→{move['new']}" in card.text

        # /schedules: the schedule, its next run and runs so far, and a Remove button.
        message = reply_message(api, people.trader, "/schedules")
        listing = message.text
        assert schedule_id in listing and "(times in UTC)" in listing and "next " in listing
        assert re.search(r"· [2-9] runs", listing)
        assert message.button_labels == [f"Remove {schedule_id}"]
        # Another user's press on it (forged into the trader's chat) is refused; the owner's
        # removes it and the list follows.
        query = api.press_button(
            people.other,
            message.message_id,
            message.button_data(f"Remove {schedule_id}"),
            chat_id=people.trader,
        )
        assert "belongs to someone else" in api.wait_for_callback_answer(query).text
        query = api.press(people.trader, message.message_id, f"Remove {schedule_id}")
        assert api.wait_for_callback_answer(query).text == f"Removed schedule {schedule_id}."
        api.wait_for(lambda: "You have no schedules" in api.message(people.trader, message.message_id).text)
        assert bot.application.bot_data["services"].schedules.store.get(schedule_id) is None


def test_a_chat_that_blocked_the_bot_pauses_its_schedule(beats, api, people, worker):
    settings = bot_settings(api, people, schedule_min_interval_s=1)
    beats("beat")
    with RunningBot(api, settings) as bot:
        reply = ask(api, people.trader, "/schedule 3s markets=5 top=2")
        schedule_id = re.search(r"Scheduled (\w{8})", reply)[1]
        wait_for_card(api, people.trader, 0, timeout=20)
        # The trader blocks the bot: the next run's card is refused with 403 Forbidden.
        api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", times=1)
        store = bot.application.bot_data["services"].schedules.store
        wait_until(lambda: store.get(schedule_id).state == "paused", timeout=20, message="the pause")
        paused = store.get(schedule_id)
        assert paused.reason == (
            "the bot may not post in the schedule's chat (Forbidden: bot was blocked by the user)"
        )
        # The run whose card was refused existed before the pause; none is started after it.
        analyses = bot.service.store
        started = len(analyses.ids_of_owner(str(people.trader)))
        # A firing after the pause reaches the worker, which starts no run for it.
        turned_down = f"schedule {schedule_id} fired: paused"
        wait_until(
            lambda: turned_down in worker.log_path.read_text(),
            timeout=20,
            message="a firing of the paused schedule",
        )
        assert len(analyses.ids_of_owner(str(people.trader))) == started
        # Unblocked later, the owner sees why it stopped.
        message = reply_message(api, people.trader, "/schedules")
        assert "paused: the bot may not post in the schedule's chat" in message.text
        cards = [m for m in api.messages(people.trader, from_bot=True) if status_of(m)]
        assert len(cards) == 1
        # ... and resumes it from that chat (the exchange shows the bot may post there again):
        # beat's next firing starts a run, and its card is posted.
        assert message.button_labels == [f"Resume {schedule_id}", f"Remove {schedule_id}"]
        resumed_at = time.time()
        query = api.press(people.trader, message.message_id, f"Resume {schedule_id}")
        assert api.wait_for_callback_answer(query).text.startswith(
            f"Resumed schedule {schedule_id}: next run "
        )
        card = wait_for_card(api, people.trader, 1, timeout=20)
        run = analyses.load(analysis_id_of(card))
        assert run.schedule == schedule_id and run.created_at >= resumed_at
        assert store.get(schedule_id).state == "active"


def test_schedules_survive_a_redis_restart(tmp_path):
    """A private append-only Redis with its own worker and beat: restarted, the schedule is still
    there and beat, which reconnects by itself, keeps firing it."""
    from redbeat.schedulers import ensure_conf

    from analysis.config_factory import RankingConfigFactory
    from analysis.schedules.service import ScheduleService
    from analysis.schedules.store import ScheduleStore
    from analysis.service import AnalysisService
    from tasks.schedule_beat import RedBeatRegistrar
    from tests.stack import Stack

    stack = Stack(
        {"BEAT_MAX_LOOP_S": "1", "SCHEDULE_MIN_INTERVAL_S": "1"}, name="schedules", log_dir=tmp_path
    )
    try:
        stack.start_worker(1)
        beat = stack.start_beat()
        rt = stack.runtime
        ensure_conf(stack.app)
        service = ScheduleService(
            ScheduleStore(rt.redis, rt.keys),
            AnalysisService(rt.store, stack.dispatcher),
            RankingConfigFactory(rt.settings, rt.provider),
            RedBeatRegistrar(stack.app),
            rt.settings,
        )
        made = service.add("2s", {"markets": 5, "top_k": 2}, Actor("redis-restart"))
        wait_until(lambda: service.store.get(made.id).runs >= 2, timeout=30, message="two runs")
        stack.restart_redis(down_s=1.0)
        runs = service.store.get(made.id).runs
        wait_until(
            lambda: service.store.get(made.id).runs >= runs + 2,
            timeout=40,
            message="two runs after the restart",
        )
        assert beat.alive and len(sends(beat, made.id)) >= 4
    finally:
        stack.close()


def test_a_new_schedules_first_run_starts_within_a_beat_tick(beats, runtime):
    """#19 item 12: the bot says "The first run starts now": with a 4 h interval, beat sends the
    first run at its next tick (BEAT_MAX_LOOP_S is 1 s here) and the run starts."""
    service = schedule_service(Runtime(Settings()))
    beat = beats("first-run")
    made = service.add("4h", {"markets": 5, "top_k": 2}, Actor("first-run"))
    wait_until(lambda: sends(beat, made.id), timeout=15, message="beat to send the first run")
    assert sends(beat, made.id)[0] - made.created_at < 5
    wait_until(lambda: service.store.get(made.id).runs == 1, timeout=30, message="the first run to start")
