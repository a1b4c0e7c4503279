"""A trader's own settings in the real bot against the local Bot API server, analyses on the real
worker: /settings and its buttons, each kind of message on / silent / off as the chat sees it
(`disable_notification` recorded by the server), quiet hours holding the finished notices and
sending one digest, in order, once the window ends."""

import random
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from analysis.engine.runtime import Runtime
from sandbox import BotApiServer
from tests.test_bot import (  # noqa: F401 (the bot tests' fixtures, shared)
    RunningBot,
    analysis_id_of,
    api,
    ask,
    bot_settings,
    logged_errors,
    people,
    some_markets,
    wait_for_card,
    wait_for_status,
)

pytestmark = pytest.mark.usefixtures("worker")


def runtime_of(services) -> Runtime:
    """A runtime over the bot's own settings (the bot's services hold no engine runtime)."""
    return Runtime(services.settings)


def notices(api: BotApiServer, chat_id: int) -> list:
    """The bot's 'an analysis ended' messages in the chat (not the cards, which are edited)."""
    return [m for m in api.messages(chat_id, from_bot=True) if (m.text or "").startswith(("✅", "⚠️ Ranking"))]


def run_to_completion(api: BotApiServer, user: int, index: int) -> str:
    """Start a small ranking; wait for its card (the `index`-th) to show Completed; its id."""
    api.send_message(user, f"/rank symbols={some_markets(4)} top=2")
    card = wait_for_card(api, user, index)
    wait_for_status(api, user, card.message_id, "Completed", timeout=60)
    return analysis_id_of(card)


def finished_flag(bot: RunningBot, analysis_id: str) -> str | None:
    """The card record's mark that the notice was dealt with (sent, held or turned off)."""
    services = bot.application.bot_data["services"]
    value = runtime_of(services).redis.hget(runtime_of(services).keys.card(analysis_id), "finished:0")
    return value.decode() if value else None


def test_each_kind_on_silent_off_as_the_chat_sees_it(api, people, logged_errors):
    with RunningBot(api, bot_settings(api, people)) as bot:
        reply = ask(api, people.trader, "/settings finished=silent")
        assert "Time zone: UTC" in reply and "Run finished: silent" in reply
        assert "Admin alerts" not in reply  # a trader is not shown the admins' kind

        silent_id = run_to_completion(api, people.trader, 0)
        [notice] = notices(api, people.trader)  # sent before the card turned Completed
        assert silent_id[:6] in notice.text and "completed" in notice.text and notice.silent

        ask(api, people.trader, "/settings finished=off")
        off_id = run_to_completion(api, people.trader, 1)
        assert finished_flag(bot, off_id) == "1"  # positive marker: the notice was decided
        assert [n.text for n in notices(api, people.trader)] == [notice.text]  # ... and nothing sent

        # The button turns it back on: on the settings message, by its user.
        settings_message = [
            m
            for m in api.messages(people.trader, from_bot=True)
            if (m.text or "").startswith("Your settings")
        ][-1]
        query = api.press(people.trader, settings_message.message_id, "Run finished: off → on")
        assert api.wait_for_callback_answer(query).text == "Saved."
        api.wait_for(
            lambda: "Run finished: on" in api.message(people.trader, settings_message.message_id).text
        )
        on_id = run_to_completion(api, people.trader, 2)
        last = notices(api, people.trader)[-1]
        assert on_id[:6] in last.text and not last.silent
    assert logged_errors == []


def window_around_now(minutes_before: int, minutes_after: int, zone: str) -> str:
    """Quiet hours from a little before now to a little after, on the clock of `zone`."""
    now = datetime.now(ZoneInfo(zone))
    start, end = now - timedelta(minutes=minutes_before), now + timedelta(minutes=minutes_after)
    return f"{start:%H:%M}-{end:%H:%M}"


@pytest.mark.slow
def test_quiet_hours_hold_three_finished_runs_and_send_one_digest_in_order(api, people, logged_errors):
    with RunningBot(api, bot_settings(api, people, quiet_check_interval_s=0.2)) as bot:
        services = bot.application.bot_data["services"]
        reply = ask(
            api, people.trader, f"/settings tz=Asia/Tokyo quiet={window_around_now(60, 120, 'Asia/Tokyo')}"
        )
        assert "Time zone: Asia/Tokyo" in reply and "UTC+09:00" in reply
        ids = []
        for n in range(3):
            ids.append(run_to_completion(api, people.trader, n))
            held = runtime_of(services).redis.llen(runtime_of(services).keys.held(str(people.trader)))
            assert held == n + 1  # positive marker: held, in Redis
            assert notices(api, people.trader) == []  # ... and nothing sent during the window

        def digests():
            return [m for m in api.messages(people.trader, from_bot=True) if (m.text or "").startswith("🌙")]

        assert digests() == []

        # The window ends (the clock the settings service reads moves 3 h on): one digest, in order.
        services.user_settings.clock = lambda: time.time() + 3 * 3600
        [digest] = api.wait_for(lambda: digests() or None, timeout=10)
        assert digest.text.startswith("🌙 3 messages held during your quiet hours")
        positions = [digest.text.index(i[:6]) for i in ids]
        assert positions == sorted(positions), digest.text
        assert "UTC+09:00" in digest.text
        assert runtime_of(services).redis.llen(runtime_of(services).keys.held(str(people.trader))) == 0

        # Outside the window a run's notice is sent at once (before its card shows Completed).
        fourth = run_to_completion(api, people.trader, 3)
        assert fourth[:6] in notices(api, people.trader)[-1].text
        assert len(digests()) == 1  # many digest rounds later: sent once
    assert logged_errors == []


def test_only_its_user_changes_their_settings_by_button(api, people, logged_errors):
    """In a group the trader's /settings message is visible to others: their presses change
    nothing (the service checks the presser), nor does forged data on another message."""
    group = -(10**12 + random.randrange(10**6))
    with RunningBot(api, bot_settings(api, people)) as bot:
        services = bot.application.bot_data["services"]
        mark = api.mark()
        api.send_message(people.trader, "/settings", chat_id=group)
        api.wait_for_call("sendMessage", lambda c: c.params.get("chat_id") == group, since=mark)
        message = [
            m for m in api.messages(group, from_bot=True) if (m.text or "").startswith("Your settings")
        ][-1]
        key = runtime_of(services).keys.user_settings(str(people.trader))
        before = runtime_of(services).redis.dump(key)
        query = api.press(people.other, message.message_id, "Run finished: on → silent", chat_id=group)
        assert "only you can change your settings" in api.wait_for_callback_answer(query).text
        # Forged: the trader's own button data pressed on a card-less, button-less message.
        plain = ask(api, people.other, "/help")
        assert plain
        helps = [m for m in api.messages(people.other, from_bot=True) if m.text and "/settings" in m.text]
        data = message.button_data("Run finished: on → silent").replace(str(people.trader), str(people.other))
        forged = api.press_button(people.other, helps[-1].message_id, data)
        assert api.wait_for_callback_answer(forged).text == "This button is no longer valid."
        assert runtime_of(services).redis.dump(key) == before
        assert (
            runtime_of(services).redis.exists(runtime_of(services).keys.user_settings(str(people.other))) == 0
        )
        assert api.message(group, message.message_id).edits == 0


def notifier_caught_up(bot: RunningBot) -> bool:
    """The bot's notifier has handled (acknowledged) every progress event written so far."""
    services = bot.application.bot_data["services"]
    redis, stream = runtime_of(services).redis, runtime_of(services).keys.events()
    newest = redis.xrevrange(stream, count=1)
    groups = [g for g in redis.xinfo_groups(stream) if g["name"].decode() == f"bot:{bot.application.bot.id}"]
    return bool(
        newest and groups and groups[0]["pending"] == 0 and groups[0]["last-delivered-id"] == newest[0][0]
    )


@pytest.mark.slow
def test_a_schedules_runs_silent_then_off(api, people, logged_errors):
    """schedule_run=silent: the run's card arrives without a sound; off: the run happens, its card
    is not posted (checked once the notifier has handled every event of the completed run)."""
    from analysis.models import Status
    from analysis.service import Actor
    from tasks.schedule_tasks import schedule_service

    with RunningBot(api, bot_settings(api, people)) as bot:
        services = bot.application.bot_data["services"]
        ask(api, people.trader, "/settings schedule_run=silent")
        assert "every 4h (UTC)" in ask(api, people.trader, f"/schedule 4h symbols={some_markets(4)} top=2")
        [schedule] = services.schedules.list(Actor(str(people.trader)))
        firing = schedule_service(runtime_of(services))  # what beat's task runs, without beat
        assert firing.fire(schedule.id, fire_id="first").code == "started"
        card = wait_for_card(api, people.trader, 0)
        wait_for_status(api, people.trader, card.message_id, "Completed", timeout=60)
        assert card.silent and "Scheduled run of" in api.message(people.trader, card.message_id).text

        ask(api, people.trader, "/settings schedule_run=off")
        started = firing.fire(schedule.id, fire_id="second")
        assert started.code == "started"
        api.wait_for(
            lambda: services.service.store.load(started.analysis_id).status == Status.COMPLETED, timeout=60
        )
        api.wait_for(lambda: notifier_caught_up(bot), timeout=20)
        assert (
            len(
                [
                    m
                    for m in api.messages(people.trader, from_bot=True)
                    if "Scheduled run of" in (m.text or "")
                ]
            )
            == 1
        )
        services.schedules.remove(schedule.id, Actor(str(people.trader)))
    assert logged_errors == []


def test_an_admin_gets_alerts_silently(api, redis_url):
    """admin_alerts=silent: the health warning reaches the admin with disable_notification."""
    from analysis.engine.runtime import Runtime
    from analysis.engine.step_stats import record_step
    from analysis.settings import Settings
    from tests.test_bot import People

    people = People()
    url = redis_url.rsplit("/", 1)[0] + "/12"  # a database of its own: its health is this test's
    runtime = Runtime(Settings(redis_url=url))
    runtime.redis.flushdb()
    with RunningBot(api, bot_settings(api, people, redis_url=url, health_check_interval_s=0.3)):
        assert "Admin alerts: silent" in ask(api, people.admin, "/settings admin_alerts=silent")
        record_step(runtime.redis, runtime.keys, "judge", now=time.time())
        warning = api.wait_for(
            lambda: [
                m
                for m in api.messages(people.admin, from_bot=True)
                if (m.text or "").startswith("marketrank health: warning")
            ],
            timeout=20,
        )
        assert warning[0].silent


def test_a_scheduled_run_in_quiet_hours_is_held_as_its_final_card_and_comes_in_the_digest(
    api, people, logged_errors
):
    from analysis.models import Status
    from analysis.service import Actor
    from tasks.schedule_tasks import schedule_service

    with RunningBot(api, bot_settings(api, people, quiet_check_interval_s=0.2)) as bot:
        services = bot.application.bot_data["services"]
        ask(
            api,
            people.trader,
            f"/settings tz=Europe/Berlin quiet={window_around_now(30, 90, 'Europe/Berlin')}",
        )
        ask(api, people.trader, f"/schedule 4h symbols={some_markets(4)} top=2")
        [schedule] = services.schedules.list(Actor(str(people.trader)))
        started = schedule_service(runtime_of(services)).fire(schedule.id, fire_id="quiet")
        api.wait_for(
            lambda: services.service.store.load(started.analysis_id).status == Status.COMPLETED, timeout=60
        )
        held_key = runtime_of(services).keys.held(str(people.trader))
        api.wait_for(lambda: runtime_of(services).redis.llen(held_key) == 1, timeout=20)  # held once, final
        api.wait_for(lambda: notifier_caught_up(bot), timeout=20)
        assert runtime_of(services).redis.llen(held_key) == 1
        assert not [
            m for m in api.messages(people.trader, from_bot=True) if "Scheduled run of" in (m.text or "")
        ]

        services.user_settings.clock = lambda: time.time() + 2 * 3600  # the window is over
        [digest] = api.wait_for(
            lambda: [
                m for m in api.messages(people.trader, from_bot=True) if (m.text or "").startswith("🌙")
            ],
            timeout=10,
        )
        assert "Schedule run posted" in digest.text and "Completed" in digest.text
        assert f"Scheduled run of {schedule.id}" in digest.text and "UTC+0" in digest.text
        services.schedules.remove(schedule.id, Actor(str(people.trader)))
    assert logged_errors == []
