"""/schedule, /schedules and /unschedule in the real bot against the local Bot API server, with no
beat running (nothing fires): validation, authorization, admins' view, the command list, resuming
a paused schedule."""

import logging
import random
import re

from analysis.schedules.service import ScheduleService
from bot import callbacks
from tests.helpers import redis_snapshot
from tests.test_bot import (  # noqa: F401 (the bot tests' fixtures, shared)
    RunningBot,
    api,
    ask,
    bot_settings,
    logged_errors,
    people,
    reply_after,
    some_markets,
    status_of,
    wait_for_card,
    wait_for_status,
)


def state(runtime, prefix: str) -> dict:
    """Every key under `prefix` but the update ledger (which records each handled update, by
    design). The bot gets a prefix of its own, so analyses of earlier tests that the session's
    worker is still running (their INIT writes shared candle blocks) cannot change it."""
    return {
        k: v
        for k, v in redis_snapshot(runtime.redis).items()
        if k.startswith(prefix.encode()) and not k.startswith(f"{prefix}update:".encode())
    }


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
        query = api.press_button(
            people.other,
            card.message_id,
            callbacks.encode_schedule(callbacks.REMOVE, theirs, False),
            chat_id=group,
        )
        assert api.wait_for_callback_answer(query).text == "This button is no longer valid."
        shown = api.message(group, card.message_id)
        assert status_of(shown) is not None and theirs not in shown.text  # still the trader's card
        assert not any(label.startswith("Remove") for label in shown.button_labels)
        assert schedules.get(theirs) is not None

        # An admin's /schedules all in the group: its Remove buttons are the admin's, not the owner's.
        mark = api.mark()
        api.send_message(people.admin, "/schedules all", chat_id=group)
        listed = api.wait_for_call(
            "sendMessage",
            lambda c: c.params.get("chat_id") == group and c.result["text"].startswith("All schedules"),
            since=mark,
        )
        query = api.press(people.other, listed.result["message_id"], f"Remove {theirs}", chat_id=group)
        assert "admin's view" in api.wait_for_callback_answer(query).text
        assert schedules.get(theirs) is not None
        query = api.press(people.admin, listed.result["message_id"], f"Remove {theirs}", chat_id=group)
        assert api.wait_for_callback_answer(query).text == f"Removed schedule {theirs}."
        assert schedules.get(theirs) is None
        api.wait_for(
            lambda: (
                "No schedules" in api.message(group, listed.result["message_id"]).text
                or theirs not in api.message(group, listed.result["message_id"]).text
            )
        )

        # The trader's own /schedules in the group; an admin removes one of them from it: the
        # message stays the trader's list (not the admin's schedules).
        kept, gone = (
            re.search(r"Scheduled (\w{8})", ask(api, people.trader, f"/schedule {every} markets=5 top=2"))[1]
            for every in ("4h", "1d")
        )
        mark = api.mark()
        api.send_message(people.trader, "/schedules", chat_id=group)
        mine = api.wait_for_call(
            "sendMessage",
            lambda c: c.params.get("chat_id") == group and "Your schedules" in c.result["text"],
            since=mark,
        )
        ask(api, people.admin, "/schedule 12h markets=5 top=2")  # the admin's own, never shown there
        query = api.press(people.admin, mine.result["message_id"], f"Remove {gone}", chat_id=group)
        assert api.wait_for_callback_answer(query).text == f"Removed schedule {gone}."
        api.wait_for(lambda: gone not in api.message(group, mine.result["message_id"]).text)
        shown = api.message(group, mine.result["message_id"])
        assert "Your schedules" in shown.text and kept in shown.text
        assert shown.button_labels == [f"Remove {kept}"]


def test_a_paused_schedule_resumes_once_for_its_owner_only(api, people, caplog, logged_errors):
    caplog.set_level(logging.INFO)
    group = -random.randrange(10**5, 10**6)
    with RunningBot(api, bot_settings(api, people)) as bot:
        service = bot.application.bot_data["services"].schedules
        mark = api.mark()
        api.send_message(people.trader, '/schedule cron="0 */4 * * *" markets=5 top=2', chat_id=group)
        schedule_id = re.search(r"Scheduled (\w{8})", reply_after(api, group, mark))[1]
        # Paused as production pauses it: a worker's firing after the trader left ALLOWED_USER_IDS.
        worker = ScheduleService(
            service.store,
            service.analyses,
            service.factory,
            service.beat,
            bot_settings(api, people, allowed_user_ids=[people.other]),
        )
        assert worker.fire(schedule_id, fire_id="bot-test-1").code == "paused"

        # Back on the list, the owner sees why it stopped, and a Resume button beside Remove.
        mark = api.mark()
        api.send_message(people.trader, "/schedules")
        call = api.wait_for_call(
            "sendMessage", lambda c: c.params.get("chat_id") == people.trader, since=mark
        )
        listing = api.message(people.trader, call.result["message_id"])
        assert "paused: its owner is no longer allowed to use the bot" in listing.text
        assert listing.button_labels == [f"Resume {schedule_id}", f"Remove {schedule_id}"]
        resume_data = listing.button_data(f"Resume {schedule_id}")

        # Another trader's press (forged into the trader's chat) and forged data are refused, logged.
        query = api.press_button(people.other, listing.message_id, resume_data, chat_id=people.trader)
        assert api.wait_for_callback_answer(query).text == "Sorry — that schedule belongs to someone else"
        ask(api, people.other, "/help")
        own = api.last_message(people.other)
        for forged in (f"s1:re:{schedule_id}:x", f"s1:re:{schedule_id.upper()}:m", "s1:re:zzzzzzzz:m"):
            query = api.press_button(people.other, own.message_id, forged)
            assert api.wait_for_callback_answer(query).text == "This button is no longer valid.", forged
        refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused:")]
        assert (
            f"refused: user={people.other} action=button resume-schedule reason=that schedule belongs "
            "to someone else" in refusals
        )
        assert (
            refusals.count(
                f"refused: user={people.other} action=button <invalid data> reason=invalid callback data"
            )
            == 2
        )
        assert service.store.get(schedule_id).state == "paused"

        # From another chat, the schedule's chat is asked first: still kicked out, it stays paused.
        api.fail("sendChatAction", 403, "Forbidden: bot was kicked from the group chat", times=1)
        assert ask(api, people.trader, f"/schedule resume {schedule_id}") == (
            f"Schedule {schedule_id} stays paused: the bot still may not post in its chat "
            "(Forbidden: bot was kicked from the group chat)."
        )
        assert service.store.get(schedule_id).state == "paused"

        # Two taps on Resume (a flaky phone): one resume; the list follows.
        queries = [api.press_button(people.trader, listing.message_id, resume_data) for _ in range(2)]
        answers = sorted(api.wait_for_callback_answer(q).text for q in queries)
        assert re.fullmatch(rf"Resumed schedule {schedule_id}: next run \d\d-\d\d \d\d:00 UTC\.", answers[0])
        assert answers[1] == f"Schedule {schedule_id} is already active: {answers[0].split(': ')[1]}"
        resumes = [
            r for r in caplog.records if r.getMessage().startswith(f"schedule {schedule_id} resumed by")
        ]
        assert len(resumes) == 1
        stored = service.store.get(schedule_id)
        assert (stored.state, stored.reason, stored.failures) == ("active", "", 0)
        api.wait_for(
            lambda: api.message(people.trader, listing.message_id).button_labels == [f"Remove {schedule_id}"]
        )
        assert "note: resumed " in api.message(people.trader, listing.message_id).text
        assert ask(api, people.trader, f"/schedule resume {schedule_id}").startswith(
            f"Schedule {schedule_id} is already active: next run "
        )
        assert "give one schedule id, e.g. /schedule resume" in ask(api, people.trader, "/schedule resume")
    assert logged_errors == []


def group_ask(api, user_id: int, group: int, text: str) -> str:
    """Send `text` in the group as `user_id`; the text of the bot's reply there."""
    mark = api.mark()
    api.send_message(user_id, text, chat_id=group)
    return reply_after(api, group, mark)


def test_a_groups_admins_list_and_remove_the_schedules_posting_there(api, people, runtime):
    """#19 item 3: a schedule outlives its owner's interest in a group; the group's admins (asked
    from Telegram, getChatAdministrators) may list and remove it, nobody else."""
    prefix = f"mrg{random.randrange(10**6)}:"
    group, elsewhere = -people.trader, -people.other
    with RunningBot(api, bot_settings(api, people, key_prefix=prefix)) as bot:
        schedule_id = re.search(
            r"Scheduled (\w{8})", group_ask(api, people.trader, group, "/schedule 4h markets=5 top=2")
        )[1]
        before = state(runtime, prefix)
        # A member of the group, not its admin; then an admin of another group, there.
        assert "belongs to someone else" in group_ask(api, people.other, group, f"/unschedule {schedule_id}")
        api.set_member(elsewhere, people.other, "administrator")
        assert "belongs to someone else" in group_ask(
            api, people.other, elsewhere, f"/unschedule {schedule_id}"
        )
        assert schedule_id not in group_ask(api, people.other, elsewhere, "/schedules")
        assert state(runtime, prefix) == before
        # Made an admin of the group: sees what posts there, whoever made it, and removes it.
        api.set_member(group, people.other, "administrator")
        listing = group_ask(api, people.other, group, "/schedules")
        assert listing.startswith("Schedules posting in this group")
        assert schedule_id in listing and f"owner {people.trader}" in listing
        assert group_ask(api, people.other, group, f"/unschedule {schedule_id}").startswith(
            f"Removed schedule {schedule_id}"
        )
        assert bot.application.bot_data["services"].schedules.store.get(schedule_id) is None


def test_a_group_admin_who_is_not_an_allowed_user_may_still_stop_what_posts_in_the_group(
    api, people, runtime
):
    """ALLOWED_USER_IDS closes the bot to strangers, but not to the admins of a group an allowed
    user's schedule posts in: there, and for that only, they may list and remove it."""
    prefix = f"mrg{random.randrange(10**6)}:"
    group = -people.trader
    with RunningBot(api, bot_settings(api, people, key_prefix=prefix)) as bot:
        schedule_id = re.search(
            r"Scheduled (\w{8})", group_ask(api, people.trader, group, "/schedule 4h markets=5 top=2")
        )[1]
        before = state(runtime, prefix)
        for command in ("/schedules", f"/unschedule {schedule_id}", "/rank markets=5"):
            assert "this bot is private" in group_ask(api, people.stranger, group, command), command
        assert state(runtime, prefix) == before
        api.set_member(group, people.stranger, "administrator")
        assert "this bot is private" in group_ask(api, people.stranger, group, "/rank markets=5")
        assert "this bot is private" in ask(api, people.stranger, "/schedules")  # in private: a stranger
        assert schedule_id in group_ask(api, people.stranger, group, "/schedules")
        assert state(runtime, prefix) == before
        assert group_ask(api, people.stranger, group, f"/unschedule {schedule_id}").startswith(
            f"Removed schedule {schedule_id}"
        )
        assert bot.application.bot_data["services"].schedules.store.get(schedule_id) is None


def test_a_schedule_stops_posting_in_a_group_its_owner_left_or_that_was_deleted(api, people, worker):
    """#19 item 3: before a run's card goes into the group, the owner's membership is asked
    (getChatMember); gone, the schedule is paused with the reason and the owner told in private.
    A deleted group ("chat not found") pauses it too."""
    group, deleted = -people.trader, -people.other
    with RunningBot(api, bot_settings(api, people)) as bot:
        schedules = bot.application.bot_data["services"].schedules
        made = [
            re.search(
                r"Scheduled (\w{8})", group_ask(api, people.trader, chat, "/schedule 4h markets=5 top=2")
            )[1]
            for chat in (group, deleted)
        ]
        assert schedules.fire(made[0], fire_id="member").code == "started"
        card = wait_for_card(api, group, 0, timeout=30)  # a member: its run is posted
        wait_for_status(api, group, card.message_id, "Completed", timeout=60)
        api.leave_group(group, people.trader)
        api.delete_group(deleted)
        for schedule_id, chat, problem in (
            (made[0], group, "its owner is no longer a member of the group"),
            (made[1], deleted, "the group no longer exists"),
        ):
            mark = api.mark()
            assert schedules.fire(schedule_id, fire_id="gone").code == "started"
            told = reply_after(api, people.trader, mark, timeout=30)
            assert told.startswith(
                f"Schedule {schedule_id} is paused and posts nothing more in chat {chat}: {problem}."
            )
            stored = schedules.store.get(schedule_id)
            assert (stored.state, stored.reason) == ("paused", f"{problem} (chat {chat})")
        # The owner was told after the run's first event: no second card went into the group.
        assert [m.message_id for m in api.messages(group, from_bot=True) if status_of(m)] == [card.message_id]
        assert "paused: its owner is no longer a member of the group" in ask(api, people.trader, "/schedules")
