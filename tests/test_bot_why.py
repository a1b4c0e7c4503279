"""The Why button and /why through the real bot against the local Bot API server (issue 22),
with the same authorization as the other buttons: a forged press changes nothing."""

import random

import pytest

from analysis.models import Status
from tests.helpers import redis_snapshot
from tests.test_bot import (  # noqa: F401 (fixtures)
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


def of_analysis(client, analysis_id):
    """Every key of one analysis and its value."""
    return {k: v for k, v in redis_snapshot(client).items() if analysis_id.encode() in k}


def test_why_button_and_why_command_explain_a_completed_card(api, people, logged_errors):
    with RunningBot(api, bot_settings(api, people)) as bot:
        api.send_message(people.trader, f"/rank symbols={some_markets(5)} top=2")
        card = wait_for_status(api, people.trader, wait_for_card(api, people.trader).message_id, "Completed")
        analysis_id = analysis_id_of(card)
        gist = bot.service.store.load(analysis_id)
        assert card.button_labels == ["Refine", "Chart", "Why", "Refresh"]
        assert card.button_data("Why") == f"v1:why:{analysis_id}"
        # The card's one line on the data INIT read.
        assert "data: 5 markets · 1h to " in card.text and "no gaps, zero volume" in card.text

        # Why: the top K, each with its two strongest contributions.
        mark = api.mark()
        query = api.press(people.trader, card.message_id, "Why")
        api.wait_for_callback_answer(query)
        call = api.wait_for_call(
            "sendMessage", lambda c: c.params.get("chat_id") == people.trader, since=mark
        )
        text = call.result["text"]
        assert text.startswith(f"Why · {analysis_id[:6]} · score")
        for item in gist.result:
            line = next(row for row in text.splitlines() if row.startswith(f"{item.rank}. {item.symbol} "))
            assert f"{item.score:+.3f}: " in line and line.count("(") == 2

        # /why <id> SYMBOL: one market in full; its contributions add up to its score.
        first = gist.result[0]
        full = ask(api, people.trader, f"/why {analysis_id[:6]} {first.symbol.lower()}")
        assert f"1. {first.symbol} score {first.score:+.4f}" in full
        assert f"sum of contributions {first.score:+.4f} = score" in full and "facts: close" in full
        assert ask(api, people.trader, f"/why {analysis_id} NOPE/USDT").startswith(
            "Sorry — 'NOPE/USDT' is not in the ranking"
        )
        assert ask(api, people.trader, "/why").startswith("Sorry — give an analysis id")
    assert logged_errors == []


def test_a_forged_or_foreign_why_changes_nothing_and_shows_nothing(api, people, logged_errors):
    group = -random.randrange(10**5, 10**6)
    with RunningBot(api, bot_settings(api, people)) as bot:
        api.send_message(people.trader, f"/rank symbols={some_markets(5)} top=2", chat_id=group)
        card = wait_for_status(api, group, wait_for_card(api, group).message_id, "Completed")
        analysis_id = analysis_id_of(card)
        assert bot.service.store.load(analysis_id).status == Status.COMPLETED
        client = bot.service.store.redis
        before = of_analysis(client, analysis_id)
        ask(api, people.other, "/help")
        own = api.last_message(people.other)
        sent_before = len(api.messages(group, from_bot=True)) + len(api.messages(people.other, from_bot=True))

        # Another allowed user presses the real Why on the trader's card: refused like Resume.
        query = api.press(people.other, card.message_id, "Why", chat_id=group)
        assert api.wait_for_callback_answer(query).text == "Sorry — that analysis belongs to someone else"
        # Forged data on the other user's own message, and malformed Why data.
        forged = {
            f"v1:why:{analysis_id}": "Sorry — that analysis belongs to someone else",
            f"v1:why:{analysis_id}:1": "This button is no longer valid.",
            f"v2:why:{analysis_id}": "This button is no longer valid.",
            "v1:why:zzzzzzzzzz": "This button is no longer valid.",
        }
        for data, text in forged.items():
            assert (
                api.wait_for_callback_answer(api.press_button(people.other, own.message_id, data)).text
                == text
            )
        # The trader's own Why pressed on a message that is not its card: stale.
        ask(api, people.trader, "/help")
        elsewhere = api.last_message(people.trader)
        query = api.press_button(people.trader, elsewhere.message_id, f"v1:why:{analysis_id}")
        assert api.wait_for_callback_answer(query).text == "This button is no longer valid."
        # /why of someone else's analysis.
        assert (
            ask(api, people.other, f"/why {analysis_id}") == "Sorry — that analysis belongs to someone else."
        )
        sent_after = len(api.messages(group, from_bot=True)) + len(api.messages(people.other, from_bot=True))
        assert sent_after == sent_before + 1  # only the refusal of /why
        assert of_analysis(client, analysis_id) == before
    assert logged_errors == []
