"""/maintenance through the real bot (PTB Application against the sandbox Bot API server, a real
Celery worker): an admin halts a trader's running analysis, its card says why, a new /rank is
refused, and `off` lets the card run to completion on one clean chain."""

import pytest

from analysis.errors import UnderMaintenance
from analysis.service import Actor
from tests.helpers import assert_history_is_one_clean_chain
from tests.test_bot import (
    RunningBot,
    analysis_id_of,
    api,
    ask,
    bot_settings,  # noqa: F401
    logged_errors,
    people,
    some_markets,
    step_of,
    wait_for_card,
    wait_for_status,
)

pytestmark = pytest.mark.usefixtures("worker")
REFUSED = "Sorry — " + UnderMaintenance.MESSAGE + "."


@pytest.fixture
def maintenance_off(runtime):
    yield
    runtime.store.clear_maintenance()


def reply_containing(api, chat_id: int, mark: int, text: str) -> str:
    call = api.wait_for_call(
        "sendMessage",
        lambda c: c.params.get("chat_id") == chat_id and text in c.result["text"],
        since=mark,
        timeout=10,
    )
    return call.result["text"]


@pytest.mark.slow
def test_admin_maintenance_halts_a_card_refuses_new_work_and_off_completes_it(
    api, people, logged_errors, maintenance_off
):
    with RunningBot(api, bot_settings(api, people)) as bot:
        store = bot.service.store
        api.send_message(people.trader, f"/rank symbols={some_markets(40)} top=3")
        card = wait_for_card(api, people.trader)
        analysis_id = analysis_id_of(card)
        api.wait_for(lambda: step_of(api.message(people.trader, card.message_id)) >= 2)

        assert ask(api, people.trader, "/maintenance on") == "Sorry, that command is for admins."
        assert store.maintenance_since() is None
        assert ask(api, people.admin, "/maintenance on").startswith(
            "Maintenance on: running analyses stop after their current step"
        )
        card = wait_for_status(api, people.trader, card.message_id, "Paused")
        assert "Reason: paused for maintenance: marketrank is being updated" in card.text
        assert store.load(analysis_id).halt == "maintenance"

        mark = api.mark()
        api.send_message(people.trader, f"/rank symbols={some_markets(5)} top=2")
        assert reply_containing(api, people.trader, mark, "being updated") == REFUSED
        assert ask(api, people.trader, f"/resume {analysis_id}") == REFUSED
        assert len(store.ids_of_owner(str(people.trader))) == 1
        assert ask(api, people.admin, "/maintenance status").startswith(
            f"Maintenance is on (by {people.admin}):"
        )
        assert ask(api, people.admin, "/maintenance banana") == (
            "Sorry — 'banana' is not a maintenance action: use /maintenance on, /maintenance off "
            "or /maintenance status."
        )

        reply = ask(api, people.admin, "/maintenance off")
        assert reply.startswith("Maintenance off: ") and "analyses resumed" in reply
        card = wait_for_status(api, people.trader, card.message_id, "Completed", timeout=90)
        gist = bot.service.get(analysis_id, Actor(str(people.trader)))
        assert_history_is_one_clean_chain(store.history(analysis_id), gist.seq)
        assert "/maintenance" in ask(api, people.admin, "/help")
        assert "/maintenance" not in ask(api, people.trader, "/help")
        admin_commands = {c["command"] for c in api.commands(scope={"type": "chat", "chat_id": people.admin})}
        assert "maintenance" in admin_commands
    assert logged_errors == []
