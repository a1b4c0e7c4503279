"""/schedule, /schedules and /unschedule in the real bot against the local Bot API server, with no
beat running (nothing fires): validation, authorization, admins' view, the command list."""

import random
import re

from bot import schedule_callbacks
from tests.helpers import redis_snapshot
from tests.test_bot import api, people  # noqa: F401 (the bot tests' fixtures, shared)
from tests.test_bot import RunningBot, ask, bot_settings, some_markets, status_of, wait_for_card


def state(runtime, prefix: str) -> dict:
    """Every key under `prefix` but the update ledger (which records each handled update, by
    design). The bot gets a prefix of its own, so analyses of earlier tests that the session's
    worker is still running (their INIT writes shared candle blocks) cannot change it."""
    return {k: v for k, v in redis_snapshot(runtime.redis).items()
            if k.startswith(prefix.encode()) and not k.startswith(f"{prefix}update:".encode())}


def test_bad_schedules_are_refused_with_nothing_written(api, people, runtime):
    prefix = f"mrs{random.randrange(10**6)}:"
    with RunningBot(api, bot_settings(api, people, max_schedules_per_user=1, key_prefix=prefix)):
        assert "every 4h (UTC)" in ask(api, people.trader, "/schedule 4h markets=5 top=2")
        before = state(runtime, prefix)
        assert before, "the accepted schedule is stored under the bot's prefix"
        cases = {
            "/schedule": "say how often and what",
            "/schedule 30s markets=5": "every 30s is too often: the shortest interval is 900 s",
            '/schedule cron="*/5 * * * *" markets=5': "fires every 5 min",
            "/schedule 4h markets=999": "999 markets is too many",
            "/schedule 4h top=abc": "top must be a whole number",
            "/schedule 4h colour=blue": "unknown option 'colour'",
            "/schedule 4h markets=5 notify=sometimes": "notify must be always or changes",
            "/schedule 4h strategy=llm": "the llm strategy needs an LLM",
            "/schedule 1d markets=5": "you already have 1 schedules; the limit is 1",
            "/unschedule": "give one schedule id",
            "/unschedule zzzzzzzz": "no schedule 'zzzzzzzz'",
            "/schedules everything": "admins may ask for /schedules all",
            "/schedules all": "every user's schedules are for admins",
        }
        for command, expected in cases.items():
            assert expected in ask(api, people.trader, command), command
        assert state(runtime, prefix) == before


def test_schedules_are_per_user_admins_see_all_and_the_command_list_has_them(api, people):
    with RunningBot(api, bot_settings(api, people)):
        reply = ask(api, people.trader, '/schedule cron="0 */4 * * *" markets=5 top=2 notify=changes')
        schedule_id = re.search(r"Scheduled (\w{8}): every cron=0 \*/4 \* \* \* \(UTC\)", reply)[1]
        assert "The first run is at the next matching minute (UTC)" in reply
        assert "Runs whose top changed are posted here" in reply
        mine = ask(api, people.trader, "/schedules")
        assert schedule_id in mine and "only changes" in mine and ":00 UTC" in mine
        assert "You have no schedules" in ask(api, people.other, "/schedules")
        assert "belongs to someone else" in ask(api, people.other, f"/unschedule {schedule_id}")
        everyone = ask(api, people.admin, "/schedules all")
        assert everyone.startswith("All schedules") and f"owner {people.trader}" in everyone
        assert f"Removed schedule {schedule_id}" in ask(api, people.trader, f"/unschedule {schedule_id}")
        assert "You have no schedules" in ask(api, people.trader, "/schedules")
        commands = {c["command"] for c in api.commands()}
        assert {"schedule", "schedules", "unschedule"} <= commands


def test_a_remove_press_changes_only_the_list_that_shows_the_button(api, people):
    group = -random.randrange(10**5, 10**6)
    with RunningBot(api, bot_settings(api, people)) as bot:
        schedules = bot.application.bot_data["services"].schedules.store
        api.send_message(people.trader, f"/rank symbols={some_markets(5)} top=2", chat_id=group)
        card = wait_for_card(api, group)
        theirs = re.search(r"Scheduled (\w{8})", ask(api, people.other, "/schedule 4h markets=5 top=2"))[1]
        # Another trader forges their own schedule's Remove button onto the trader's card.
        query = api.press_button(people.other, card.message_id, schedule_callbacks.encode(theirs, False),
                                 chat_id=group)
        assert api.wait_for_callback_answer(query).text == "This button is no longer valid."
        shown = api.message(group, card.message_id)
        assert status_of(shown) is not None and theirs not in shown.text  # still the trader's card
        assert not any(label.startswith("Remove") for label in shown.button_labels)
        assert schedules.get(theirs) is not None

        # An admin's /schedules all in the group: its Remove buttons are the admin's, not the owner's.
        mark = api.mark()
        api.send_message(people.admin, "/schedules all", chat_id=group)
        listed = api.wait_for_call("sendMessage", lambda c: c.params.get("chat_id") == group
                                   and c.result["text"].startswith("All schedules"), since=mark)
        query = api.press(people.other, listed.result["message_id"], f"Remove {theirs}", chat_id=group)
        assert "admin's view" in api.wait_for_callback_answer(query).text
        assert schedules.get(theirs) is not None
        query = api.press(people.admin, listed.result["message_id"], f"Remove {theirs}", chat_id=group)
        assert api.wait_for_callback_answer(query).text == f"Removed schedule {theirs}."
        assert schedules.get(theirs) is None
        api.wait_for(lambda: "No schedules" in api.message(group, listed.result["message_id"]).text
                     or theirs not in api.message(group, listed.result["message_id"]).text)
