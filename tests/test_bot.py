"""The Telegram bot end to end: the real PTB Application talks HTTP to the local Bot API emulator,
analyses run on a real Celery worker over the session's real Redis. Assertions are about what a
user sees in the chat and about the analysis state."""

import asyncio
import datetime as dtm
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from analysis.markets.demo import DEMO_MARKETS
from analysis.models import Status
from analysis.service import Actor
from analysis.settings import Settings
from sandbox import BotApiServer, ChatMessage
from tests.conftest import wait_until
from tests.helpers import assert_history_is_one_clean_chain, wait_for_idle_broker
from tests.servers import ROOT

pytestmark = pytest.mark.usefixtures("worker")

STATUS_LINE = re.compile(r"^(?:Ranking|Entry analysis|Exit analysis) (\w+) · (\w+)$", re.M)


# --- harness ---------------------------------------------------------------------------------
class People:
    """Fresh Telegram user ids per test, so per-user limits never leak between tests."""

    def __init__(self):
        base = random.randrange(10**8, 10**9, 10)
        self.trader, self.other, self.admin, self.stranger = base + 1, base + 2, base + 3, base + 4


@pytest.fixture
def people() -> People:
    return People()


@pytest.fixture
def api():
    # A bot id of its own per test: the notifier's consumer group is per bot.
    with BotApiServer(token=f"{random.randrange(10**6, 10**9)}:TEST") as server:
        yield server


def bot_settings(api: BotApiServer, people: People, **overrides) -> Settings:
    values = dict(
        telegram_bot_token=api.token,
        telegram_api_base_url=api.base_url,
        allowed_user_ids=[people.trader, people.other],
        admin_user_ids=[people.admin],
        score_batch_size=1,
        card_edit_interval_s=0.5,
    )
    return Settings(**{**values, **overrides})


class RunningBot:
    """`build_application(settings).run_polling()` on its own loop in a thread — the same path as
    `python -m bot`, post_init and shutdown included."""

    def __init__(self, api: BotApiServer, settings: Settings):
        from bot.app import build_application

        self.api, self.application = api, build_application(settings)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name="bot-under-test", daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.application.run_polling(
            poll_interval=0,
            timeout=dtm.timedelta(seconds=2),
            stop_signals=None,
            allowed_updates=["message", "callback_query"],
        )

    def __enter__(self) -> "RunningBot":
        mark = self.api.mark()
        self.thread.start()
        self.api.wait_for(lambda: self.api.calls_of("getUpdates", since=mark), timeout=15)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.application.stop_running)
        self.thread.join(20)
        assert not self.thread.is_alive(), "the bot did not shut down"

    @property
    def service(self):
        return self.application.bot_data["services"].service


@pytest.fixture
def logged_errors():
    """ERROR records from the bot's loggers (the error handler logs every unhandled exception)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.ERROR)
    logger = logging.getLogger("bot")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def status_of(message: ChatMessage) -> str | None:
    """The status word the card shows (Pending, Running, Paused, Completed...)."""
    match = STATUS_LINE.search(message.text or "")
    return match.group(2) if match else None


def shown_statuses(message: ChatMessage) -> list[str]:
    """Every status the card went through, consecutive repeats collapsed."""
    seen = [status_of(ChatMessage(0, 0, True, {}, 0, text=t)) for t in [*message.history, message.text]]
    return [s for i, s in enumerate(seen) if s and (i == 0 or seen[i - 1] != s)]


def step_of(message: ChatMessage) -> int:
    match = re.search(r"· step (\d+)$", message.text or "", re.M)
    return int(match.group(1)) if match else -1


def analysis_id_of(message: ChatMessage) -> str:
    data = message.button_data("Refresh")
    return data.split(":")[2]


def wait_for_card(api: BotApiServer, chat_id: int, index: int = 0, timeout: float = 15) -> ChatMessage:
    """The status card number `index` (from 0) among those the chat shows, once it is there."""

    def find():
        cards = [m for m in api.messages(chat_id, from_bot=True) if status_of(m)]
        return cards[index] if len(cards) > index else None

    return api.wait_for(find, timeout)


def wait_for_status(
    api: BotApiServer, chat_id: int, message_id: int, word: str, timeout: float = 30
) -> ChatMessage:
    return api.wait_for(
        lambda: (m := api.message(chat_id, message_id)) and status_of(m) == word and m, timeout
    )


def reply_after(api: BotApiServer, chat_id: int, mark: int, timeout: float = 10) -> str:
    """Text of the bot's reply sent after the call-record position `mark`."""
    call = api.wait_for_call(
        "sendMessage", lambda c: c.params.get("chat_id") == chat_id, since=mark, timeout=timeout
    )
    return call.result["text"]


def ask(api: BotApiServer, user_id: int, text: str) -> str:
    """Send `text` in the user's private chat; the text of the bot's reply."""
    mark = api.mark()
    api.send_message(user_id, text)
    return reply_after(api, user_id, mark)


def some_markets(n: int) -> str:
    return ",".join(DEMO_MARKETS[:n])


# --- the trader's journey --------------------------------------------------------------------
@pytest.mark.slow
def test_rank_pause_ten_resumes_completion_and_chart(api, people, logged_errors):
    with RunningBot(api, bot_settings(api, people)) as bot:
        api.send_message(people.trader, f"/rank symbols={some_markets(60)} top=3")
        card = wait_for_card(api, people.trader)
        analysis_id = analysis_id_of(card)
        assert "60 markets · 1h · score · top 3" in card.text
        assert "DEMO DATA" in card.text
        assert card.button_labels == ["Pause", "Cancel", "Refresh"]

        # Pause mid-way: the card says so, and once the step in flight has committed nothing moves.
        api.wait_for(lambda: step_of(api.message(people.trader, card.message_id)) >= 2)
        query = api.press(people.trader, card.message_id, "Pause")
        assert api.wait_for_callback_answer(query).text.startswith("Paused")
        card = wait_for_status(api, people.trader, card.message_id, "Paused")
        assert card.button_labels == ["Resume", "Cancel", "Refresh"]
        store = bot.service.store
        wait_until(lambda: store.lease_holder(analysis_id) is None, message="the step in flight")
        paused_at = store.load(analysis_id).seq
        wait_for_idle_broker()  # deliveries still queued or running find it paused: no step starts
        gist = store.load(analysis_id)
        assert gist.status == Status.PAUSED and gist.seq == paused_at < 61

        # Ten Resume taps within 100 ms: one chain continues, one visible change.
        resume = api.button_data(people.trader, card.message_id, "Resume")
        started = time.monotonic()
        queries = [api.press_button(people.trader, card.message_id, resume) for _ in range(10)]
        assert time.monotonic() - started < 0.1
        answers = [api.wait_for_callback_answer(q).text for q in queries]
        assert answers.count("Resumed.") == 1, answers
        assert set(answers) == {"Resumed.", "Already running."}

        card = wait_for_status(api, people.trader, card.message_id, "Completed", timeout=60)
        gist = store.load(analysis_id)
        history = store.history(analysis_id)
        assert_history_is_one_clean_chain(history, gist.seq)
        assert len({entry.chain for entry in history}) == 2  # the ten taps minted one new chain
        assert shown_statuses(card)[-3:] == ["Paused", "Running", "Completed"]
        assert shown_statuses(card).count("Paused") == 1
        ranked = [f"{item.rank}. {item.symbol}" for item in gist.result]
        assert len(ranked) == 3 and all(line in card.text for line in ranked)
        assert card.button_labels == ["Refine", "Chart", "Why", "Refresh"]

        # Chart: answered at once, then a PNG of the top 3, even when the chat's flood control
        # (card edits and notices count too) asks the first send to wait.
        api.rate_limit("sendPhoto", times=1, retry_after=1, chat_id=people.trader)
        query = api.press(people.trader, card.message_id, "Chart")
        assert api.wait_for_callback_answer(query).text
        photo = api.wait_for(
            lambda: next((m for m in api.messages(people.trader, from_bot=True) if m.photo), None)
        )
        assert photo.photo.is_png and photo.photo.width > 300
        assert analysis_id[:6] in photo.caption and "top 3" in photo.caption
        sent = api.wait_for_call("sendPhoto", lambda call: call.ok)  # the photo shows before its answer
        refused = api.calls_of("sendPhoto")[0]
        assert refused.status == 429 and refused.seq < sent.seq
        assert sent.received - refused.answered >= 0.95
    assert logged_errors == []


# --- authorization and forged buttons --------------------------------------------------------
def test_others_strangers_and_forged_buttons_change_nothing(api, people, logged_errors):
    group = -random.randrange(10**5, 10**6)
    with RunningBot(api, bot_settings(api, people)) as bot:
        api.send_message(people.trader, f"/rank symbols={some_markets(40)} top=3", chat_id=group)
        card = wait_for_card(api, group)
        analysis_id = analysis_id_of(card)
        api.press(people.trader, card.message_id, "Pause", chat_id=group)
        card = wait_for_status(api, group, card.message_id, "Paused")
        store = bot.service.store
        wait_until(lambda: store.lease_holder(analysis_id) is None, message="the step in flight")

        # The card settles on the step that was in flight when the pause came (INIT's commit adds
        # the data line, with the step still shown as 0).
        def settled() -> bool:
            shown, seq = api.message(group, card.message_id), store.load(analysis_id).seq
            return step_of(shown) == max(seq, 0) and (seq < 0 or "\ndata: " in shown.text)

        wait_until(settled, message="the card to show the last committed step")
        before = store.load(analysis_id)
        card = api.message(group, card.message_id)

        # Another allowed user taps Resume on the trader's card in the group: refused.
        query = api.press(people.other, card.message_id, "Resume", chat_id=group)
        assert api.wait_for_callback_answer(query).text == "Sorry — that analysis belongs to someone else"
        # A stranger taps it: refused before anything is looked up.
        query = api.press_button(people.stranger, card.message_id, card.button_data("Resume"), chat_id=group)
        assert "private" in api.wait_for_callback_answer(query).text

        # Forged data from the other user's own chat, on a message the bot sent them.
        ask(api, people.other, "/help")
        own = api.last_message(people.other)
        forged = {
            f"v1:cancel:{analysis_id}": "Sorry — that analysis belongs to someone else",
            f"v1:resume:{analysis_id}": "Sorry — that analysis belongs to someone else",
            f"v1:refine:{analysis_id}:{before.refine_gen}": "Sorry — that analysis belongs to someone else",
            "\x00\x7f💥 garbage \u202e": "This button is no longer valid.",
            ("v1:resume:" + analysis_id + ":").ljust(64, "x"): "This button is no longer valid.",
            f"v2:resume:{analysis_id}": "This button is no longer valid.",
            f"v1:resume:{analysis_id.upper()}": "This button is no longer valid.",
            f"v1:refine:{analysis_id}": "This button is no longer valid.",
            f"v1:resume:{analysis_id}:0": "This button is no longer valid.",
            f"v1:delete:{analysis_id}": "This button is no longer valid.",
            "v1:resume:zzzzzzzzzz": "This button is no longer valid.",  # well formed, no such analysis
        }
        assert len(("v1:resume:" + analysis_id + ":").ljust(64, "x").encode()) == 64
        queries = {
            api.press_button(people.other, own.message_id, data): text for data, text in forged.items()
        }
        for query, text in queries.items():
            assert api.wait_for_callback_answer(query).text == text

        # Commands: a stranger may not start anything, a trader may not use admin commands.
        refusal = ask(api, people.stranger, f"/rank symbols={some_markets(3)}")
        assert "private" in refusal and str(people.stranger) in refusal
        assert ask(api, people.other, f"/force_resume {analysis_id}") == "Sorry, that command is for admins."
        assert (
            ask(api, people.other, f"/resume {analysis_id}")
            == "Sorry — that analysis belongs to someone else."
        )

        after = store.load(analysis_id)
        assert (after.version, after.status, after.seq) == (before.version, Status.PAUSED, before.seq)
        assert api.message(group, card.message_id).text == card.text
        assert api.message(group, card.message_id).edits == card.edits
        assert bot.service.list(Actor(str(people.stranger))) == []
        assert not api.messages(people.stranger, from_bot=True)[0].buttons
    assert logged_errors == []


def test_a_forged_button_changes_no_message_but_its_analysis_card(api, people, logged_errors):
    """A press edits only the analysis's card (or a message whose buttons carry that analysis):
    a forged press of the presser's own analysis on someone else's card changes nothing."""
    group = -random.randrange(10**5, 10**6)
    with RunningBot(api, bot_settings(api, people)) as bot:
        api.send_message(people.trader, f"/rank symbols={some_markets(5)} top=2", chat_id=group)
        card = wait_for_status(api, group, wait_for_card(api, group).message_id, "Completed")
        # The other user has an analysis with a live card of its own, and one with no card.
        api.send_message(people.other, f"/rank symbols={some_markets(5)} top=2")
        own = wait_for_status(api, people.other, wait_for_card(api, people.other).message_id, "Completed")
        with_card = analysis_id_of(own)
        factory = bot.application.bot_data["services"].factory
        without_card = bot.service.start(
            factory.create_ranking_config(symbols=DEMO_MARKETS[:60], top_k=3), Actor(str(people.other))
        ).id
        cards = bot.application.bot_data["services"].notifier.cards
        card, own = api.message(group, card.message_id), api.message(people.other, own.message_id)

        forged = [
            f"v1:refresh:{with_card}",
            f"v1:refresh:{without_card}",
            f"v1:pause:{without_card}",
            f"v1:cancel:{without_card}",
            f"v1:chart:{with_card}",
            f"v1:refine:{with_card}:0",
        ]
        queries = [api.press_button(people.other, card.message_id, data, chat_id=group) for data in forged]
        queries.append(
            api.press_button(people.other, 10**6, f"v1:refresh:{without_card}", chat_id=group, force=True)
        )  # a message the bot cannot see
        for query in queries:
            assert api.wait_for_callback_answer(query).text == "This button is no longer valid."

        assert api.message(group, card.message_id).text == card.text
        assert api.message(group, card.message_id).buttons == card.buttons
        assert api.message(group, card.message_id).edits == card.edits
        assert api.message(people.other, own.message_id).edits == own.edits
        assert not [m for m in api.messages(group, from_bot=True) if m.photo]
        assert bot.service.store.load(without_card).status in (
            Status.PENDING,
            Status.RUNNING,
            Status.COMPLETED,
        )
        assert bot.service.store.load(with_card).refine_gen == 0
        assert asyncio.run_coroutine_threadsafe(cards.get(without_card), bot.loop).result(5) is None
        # The real buttons still work, for their owners.
        query = api.press(people.other, own.message_id, "Refresh")
        assert api.wait_for_callback_answer(query).text == "Up to date."
        query = api.press(people.trader, card.message_id, "Refresh", chat_id=group)
        assert api.wait_for_callback_answer(query).text == "Up to date."
        bot.service.cancel(without_card, Actor(str(people.other)))
    assert logged_errors == []


ANONYMOUS_ADMIN, CHANNEL_BOT = 1087968824, 136817688  # Telegram's shared senders


def test_anonymous_admins_and_channels_are_asked_to_post_as_themselves(api, people, logged_errors):
    """Telegram sends every anonymous group admin as one user: no command may act as it."""
    group_a, group_b = -random.randrange(10**5, 10**6), -random.randrange(10**6, 10**7)
    anonymous = Actor(str(ANONYMOUS_ADMIN))
    with RunningBot(api, bot_settings(api, people, allowed_user_ids=[])) as bot:
        # An analysis the shared account owns (as one could start before this was refused).
        factory = bot.application.bot_data["services"].factory
        legacy = bot.service.start(factory.create_ranking_config(symbols=DEMO_MARKETS[:40]), anonymous).id
        bot.service.pause(legacy, anonymous)
        wait_until(lambda: bot.service.store.lease_holder(legacy) is None, message="the step in flight")
        before, ids_before = bot.service.store.load(legacy), bot.service.store.all_ids()

        posts = [
            (
                ANONYMOUS_ADMIN,
                group_a,
                {"id": group_a, "type": "supergroup", "title": "A"},
                "/rank markets=5",
            ),
            (ANONYMOUS_ADMIN, group_b, {"id": group_b, "type": "supergroup", "title": "B"}, "/list"),
            (
                ANONYMOUS_ADMIN,
                group_b,
                {"id": group_b, "type": "supergroup", "title": "B"},
                f"/cancel {legacy}",
            ),
            (
                ANONYMOUS_ADMIN,
                group_b,
                {"id": group_b, "type": "supergroup", "title": "B"},
                f"/resume {legacy}",
            ),
            (CHANNEL_BOT, group_b, {"id": -100123, "type": "channel", "title": "C"}, "/rank markets=5"),
        ]
        for user_id, chat_id, sender_chat, text in posts:
            mark = api.mark()
            api.send_message(user_id, text, chat_id=chat_id, sender_chat=sender_chat)
            reply = reply_after(api, chat_id, mark)
            assert "anonymous" in reply and "post as yourself" in reply, (text, reply)
            assert legacy[:6] not in reply

        after = bot.service.store.load(legacy)
        assert (after.version, after.status) == (before.version, Status.PAUSED)
        assert bot.service.store.all_ids() == ids_before
        assert not [m for m in api.messages(group_a, from_bot=True) if status_of(m)]
        bot.service.cancel(legacy, anonymous)
    assert logged_errors == []


def test_bad_arguments_and_limits_are_explained(api, people, logged_errors):
    settings = bot_settings(api, people, max_active_per_user=1, max_prompt_chars=40)
    with RunningBot(api, settings) as bot:
        cases = {
            "/rank top=abc": "Sorry — top must be a whole number, not 'abc'.",
            "/rank colour=blue": "Sorry — unknown option 'colour': use markets, symbols, timeframe, top, "
            "strategy, target, prompt.",
            "/rank top5": "Sorry — 'top5' is not key=value; for example: /rank markets=20 top=5 "
            'prompt="steady uptrends".',
            '/rank prompt="unclosed': 'Sorry — a quote is not closed: write prompt="like this".',
            "/rank target=high": "Sorry — target must be a number like 0.85, not 'high'.",
            "/rank markets=5 timeframe=2h": "Sorry — unknown timeframe '2h': use one of 5m, 15m, 1h, 4h, 1d.",
            "/rank symbols=BTC/USDT,NOPE/USDT": "unknown symbol NOPE/USDT",
            f'/rank markets=5 prompt="{"x" * 41}"': "the prompt is 41 characters; the limit is 40",
            "/status": "Sorry — give one analysis id, e.g. /status k3f9a2 (your ids are in /list).",
            "/pause nosuchid": "Sorry — no analysis 'nosuchid': ids look like k3f9a2xq7m.",
            "/pause zzzzzz": "Sorry — no analysis 'zzzzzz'.",
        }
        for command, expected in cases.items():
            assert expected in ask(api, people.trader, command), command

        # “Smart” quotes from phone keyboards work like straight ones.
        api.send_message(people.trader, "/rank markets=5 top=2 prompt=“two words”")
        card = wait_for_card(api, people.trader)
        assert "5 markets" in card.text
        assert "the limit is 1" in ask(api, people.trader, "/rank markets=5")
        gists = bot.service.list(Actor(str(people.trader)))
        assert len(gists) == 1 and gists[0].config.prompt == "two words"
    assert logged_errors == []


def test_an_update_delivered_again_after_a_crash_is_handled_once(api, people, logged_errors):
    with RunningBot(api, bot_settings(api, people)):
        update_id = api.send_message(people.trader, "/rank markets=5 top=2")
        wait_for_card(api, people.trader)
    # The bot "crashed" before confirming the update: a new process gets it again.
    api.deliver_again(update_id)
    with RunningBot(api, bot_settings(api, people)) as bot:
        api.wait_for(lambda: update_id not in api.pending_updates, timeout=10)
        assert ask(api, people.trader, "/list").count("5 markets") == 1
        assert len(bot.service.list(Actor(str(people.trader)))) == 1
    assert logged_errors == []


# --- admins ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_admin_force_resumes_a_stuck_analysis(api, people, logged_errors):
    with RunningBot(api, bot_settings(api, people)) as bot:
        api.send_message(people.trader, f"/rank symbols={some_markets(40)} top=3")
        card = wait_for_card(api, people.trader)
        analysis_id = analysis_id_of(card)
        api.wait_for(lambda: step_of(api.message(people.trader, card.message_id)) >= 2)

        # Stuck: a zombie attempt of the next step holds the lease and will never commit.
        service, store, owner = bot.service, bot.service.store, Actor(str(people.trader))
        service.pause(analysis_id, owner)
        wait_until(lambda: store.lease_holder(analysis_id) is None, message="the step in flight")
        wait_for_idle_broker()  # no queued delivery left to take the next step before the zombie
        seq, chain = store.load(analysis_id).seq, store.chain(analysis_id)
        store.redis.hset(store.keys.control(analysis_id), "wanted", "running")
        assert store.begin_step(analysis_id, chain, seq + 1, "zombie", now=time.time())[1] is not None
        wait_for_status(api, people.trader, card.message_id, "Paused")

        assert ask(api, people.trader, f"/force_resume {analysis_id}") == "Sorry, that command is for admins."
        assert ask(api, people.admin, f"/force_resume {analysis_id}") == f"Force-resumed from step {seq + 1}."

        card = wait_for_status(api, people.trader, card.message_id, "Completed", timeout=60)
        gist = store.load(analysis_id)
        history = store.history(analysis_id)
        assert_history_is_one_clean_chain(history, gist.seq)
        assert "zombie" not in {entry.attempt for entry in history}
        assert f"1. {gist.result[0].symbol}" in card.text

        assert "session@" in ask(api, people.admin, "/workers")
        queues = ask(api, people.admin, "/queues")
        # both queues; the analyses it counts are the live ones (the completed one is not)
        assert "marketrank: " in queues and "marketrank.watchdog: " in queues and "queued" in queues
        assert "Live analyses by status" in queues and "Completed: " not in queues
        # Other tests share this Redis and may leave analyses stuck; this one is no longer among them.
        stuck = ask(api, people.admin, "/stuck")
        assert re.match(r"(Nothing is stuck\.|\d+ stuck)", stuck) and analysis_id not in stuck, stuck
        assert ask(api, people.admin, "/failures").startswith(("No recent failures.", "Recent failures"))
        health = ask(api, people.admin, "/health")
        assert health.startswith(("health: healthy", "health: warning", "health: critical"))
        assert "workers: session@" in health and "steps last hour: " in health
        assert ask(api, people.trader, "/health") == "Sorry, that command is for admins."
        assert "/force_resume" in ask(api, people.admin, "/help")
        commands = {c["command"] for c in api.commands()}
        admin_commands = {c["command"] for c in api.commands(scope={"type": "chat", "chat_id": people.admin})}
        assert {"rank", "entry", "exit", "list", "status", "pause", "resume", "refine", "cancel"} <= commands
        assert "force_resume" not in commands and {"force_resume", "stuck", "queues"} <= admin_commands
        assert "/force_resume" not in ask(api, people.trader, "/help")
        assert ask(api, people.trader, "/stuck") == "Sorry, that command is for admins."
    assert logged_errors == []


# --- delivery of card updates ----------------------------------------------------------------
@pytest.mark.slow
def test_card_edits_are_throttled_and_end_on_the_final_state(api, people, logged_errors):
    # An interval well above a step's time, on a loaded machine too: bursts are there to coalesce.
    with RunningBot(api, bot_settings(api, people, card_edit_interval_s=1.0)) as bot:
        api.send_message(people.trader, f"/rank symbols={some_markets(60)} top=5")
        card = wait_for_card(api, people.trader)
        card = wait_for_status(api, people.trader, card.message_id, "Completed", timeout=60)
        steps = len(bot.service.store.history(analysis_id_of(card)))
    edits = [c for c in api.calls_of("editMessageText") if c.params["message_id"] == card.message_id]
    assert 1 <= len(edits) < steps / 3  # bursts of steps were coalesced
    # the card's own sendMessage (the "completed" notice is another message, sent later)
    sent = next(
        c for c in api.calls_of("sendMessage") if (c.result or {}).get("message_id") == card.message_id
    ).received
    gaps = [b.received - a.received for a, b in zip([None, *edits][1:], edits[1:])]
    assert edits[0].received - sent >= 0.95 and all(gap >= 0.95 for gap in gaps), gaps
    assert "Completed" in edits[-1].params["text"] and all(c.ok for c in edits)
    assert logged_errors == []


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # RetryAfter's int
def test_rate_limited_edits_wait_and_lose_no_final_state(api, people, logged_errors):
    with RunningBot(api, bot_settings(api, people, card_edit_interval_s=0.2)) as bot:
        # Only the trader's chat: the session's worker may still be finishing other tests' analyses.
        api.rate_limit("editMessageText", times=2, retry_after=1, chat_id=people.trader)
        api.send_message(people.trader, f"/rank symbols={some_markets(20)} top=3")
        card = wait_for_card(api, people.trader)
        card = wait_for_status(api, people.trader, card.message_id, "Completed", timeout=30)
        gist = bot.service.store.load(analysis_id_of(card))
    edits = [c for c in api.calls_of("editMessageText") if c.params.get("chat_id") == people.trader]
    limited = [i for i, c in enumerate(edits) if c.status == 429]
    assert len(limited) == 2
    for i in limited:  # each retry came after the wait Telegram asked for
        assert edits[i + 1].received - edits[i].answered >= 0.95
    assert edits[-1].ok and all(f"{m.rank}. {m.symbol}" in card.text for m in gist.result)
    assert logged_errors == []


@pytest.mark.slow
def test_bot_restarted_mid_analysis_keeps_the_card_updating(api, people, service, tmp_path):
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_BASE_URL": api.base_url,
        "ALLOWED_USER_IDS": str(people.trader),
        "ADMIN_USER_IDS": "",
        "SCORE_BATCH_SIZE": "1",
        "CARD_EDIT_INTERVAL_S": "0.3",
    }
    log_path = tmp_path / "bot.log"

    def start_bot() -> subprocess.Popen:
        mark = api.mark()
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=ROOT,
            env=env,
            stdout=open(log_path, "ab"),
            stderr=subprocess.STDOUT,
        )
        api.wait_for(lambda: api.calls_of("getUpdates", since=mark), timeout=30)
        return process

    bot = start_bot()
    try:
        api.send_message(people.trader, f"/rank symbols={some_markets(60)} top=3")
        card = wait_for_card(api, people.trader)
        analysis_id = analysis_id_of(card)
        api.wait_for(lambda: step_of(api.message(people.trader, card.message_id)) >= 2)
        bot.send_signal(signal.SIGKILL)
        bot.wait(10)

        # While the bot is down the analysis moves on, and the trader pauses it from elsewhere.
        owner = Actor(str(people.trader))
        service.pause(analysis_id, owner)
        wait_until(lambda: service.store.lease_holder(analysis_id) is None, message="the step in flight")
        down = service.get(analysis_id, owner)
        assert down.status == Status.PAUSED and 2 <= down.seq < 61

        bot = start_bot()
        card = wait_for_status(api, people.trader, card.message_id, "Paused")  # shown after the restart
        wait_until(
            lambda: step_of(api.message(people.trader, card.message_id)) == down.seq,
            message="the card to show the step reached while the bot was down",
        )
        api.press(people.trader, card.message_id, "Resume")
        card = wait_for_status(api, people.trader, card.message_id, "Completed", timeout=60)
        gist = service.get(analysis_id, owner)
        assert all(f"{m.rank}. {m.symbol}" in card.text for m in gist.result)
        assert len([m for m in api.messages(people.trader, from_bot=True) if status_of(m)]) == 1
        group = f"bot:{api.bot_id}"
        wait_until(
            lambda: service.store.redis.xpending(service.store.keys.events(), group)["pending"] == 0,
            message="every event acknowledged",
        )
    finally:
        bot.send_signal(signal.SIGTERM)
        bot.wait(20)
    log = log_path.read_text()
    assert "Traceback" not in log and api.token not in log, log[-3000:]


def test_a_card_that_can_no_longer_be_edited_is_sent_again(api, people, logged_errors):
    with RunningBot(api, bot_settings(api, people, card_edit_interval_s=0.2)) as bot:
        api.send_message(people.trader, f"/rank symbols={some_markets(40)} top=3")
        card = wait_for_card(api, people.trader)
        analysis_id = analysis_id_of(card)
        delete_message(api, people.trader, card.message_id)  # e.g. the user deleted it
        fresh = wait_for_card(api, people.trader)  # the deleted card is no longer shown
        assert fresh.message_id != card.message_id
        fresh = wait_for_status(api, people.trader, fresh.message_id, "Completed", timeout=30)
        assert analysis_id_of(fresh) == analysis_id
        cards = bot.application.bot_data["services"].notifier.cards
        location = asyncio.run_coroutine_threadsafe(cards.get(analysis_id), bot.loop).result(5)
        assert (location.chat_id, location.message_id) == (people.trader, fresh.message_id)
    assert logged_errors == []


def delete_message(api: BotApiServer, chat_id: int, message_id: int) -> None:
    """Delete a bot message through the Bot API, as a user deleting it would."""
    request = urllib.request.Request(
        f"{api.base_url}{api.token}/deleteMessage",
        data=json.dumps({"chat_id": chat_id, "message_id": message_id}).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        assert json.load(response)["ok"]


def test_entry_exit_list_status_refine_and_cancel(api, people, logged_errors):
    with RunningBot(api, bot_settings(api, people, default_markets=60)) as bot:
        api.send_message(people.trader, f"/rank symbols={some_markets(8)} top=2")
        ranking = wait_for_status(
            api, people.trader, wait_for_card(api, people.trader).message_id, "Completed"
        )
        # Refine, tapped twice on the same card: one raise of the target, the other a no-op.
        refine = ranking.button_data("Refine")
        first = api.press_button(people.trader, ranking.message_id, refine)
        second = api.press_button(people.trader, ranking.message_id, refine)
        answers = {api.wait_for_callback_answer(first).text, api.wait_for_callback_answer(second).text}
        assert answers == {"Refining toward confidence 0.85.", "This refine was already applied."}
        api.wait_for(
            lambda: (
                "target 0.85" in api.message(people.trader, ranking.message_id).text
                and status_of(api.message(people.trader, ranking.message_id)) == "Completed"
            ),
            timeout=30,
        )
        assert bot.service.store.load(analysis_id_of(ranking)).target == 0.85

        api.send_message(people.trader, f"/exit {some_markets(3)} taking profits")
        exit_card = wait_for_card(api, people.trader, index=1)
        assert exit_card.text.startswith("Exit analysis ") and "3 markets" in exit_card.text
        api.send_message(people.trader, "/entry strong momentum, no meme coins")
        entry_card = wait_for_card(api, people.trader, index=2)
        assert entry_card.text.startswith("Entry analysis ")
        entry_id = analysis_id_of(entry_card)
        assert ask(api, people.trader, f"/cancel {entry_id[:6]}") == "Cancelled."
        wait_for_status(api, people.trader, entry_card.message_id, "Cancelled")
        listing = ask(api, people.trader, "/list")
        assert all(analysis_id_of(c)[:6] in listing for c in (ranking, exit_card, entry_card))
        api.send_message(people.trader, f"/status {entry_id[:5]}")
        again = wait_for_card(api, people.trader, index=3)
        assert status_of(again) == "Cancelled" and again.button_labels == ["Refresh"]
        assert ask(api, people.admin, f"/status {entry_id}").startswith("Entry analysis ")  # a snapshot
        assert api.message(people.trader, again.message_id).text == again.text
    assert logged_errors == []


@pytest.mark.slow
def test_a_rejected_token_is_one_clear_line_that_never_shows_the_token(api, tmp_path):
    """python-telegram-bot's InvalidToken quotes the whole token; neither the terminal nor a log
    (the bot's, or the tail `make run` echoes when a child exits) may show it."""
    wrong = f"{random.randrange(10**6, 10**9)}:NOT-THE-SERVERS-SECRET"
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": wrong, "TELEGRAM_API_BASE_URL": api.base_url}
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "rejected TELEGRAM_BOT_TOKEN" in done.stderr and "@BotFather" in done.stderr
    for secret in (wrong, wrong.split(":")[1]):
        assert secret not in done.stdout + done.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_and_tracebacks_mask_every_secret_setting(log_format):
    from pythonjsonlogger.json import JsonFormatter

    from analysis.redaction import RedactingFormatter, secrets_of

    settings = Settings(
        telegram_bot_token="123:bot-secret",
        openai_api_key='sk-llm"secret',
        redis_url="redis://user:redis@secret@db:6379/0",
    )
    inner = JsonFormatter("%(message)s") if log_format == "json" else logging.Formatter("%(message)s")
    formatter = RedactingFormatter(inner, secrets_of(settings))
    try:
        raise RuntimeError("The token `123:bot-secret` was rejected by the server.")
    except RuntimeError:
        record = logging.LogRecord(
            "t",
            logging.ERROR,
            __file__,
            1,
            "key %s at %s, then %s",
            ('sk-llm"secret', "redis://user:redis@secret@db:6379/0", "redis@secret"),
            sys.exc_info(),
        )
    line = formatter.format(record)
    assert "rejected by the server" in line and "redis://user:***@db:6379/0" in line
    assert not any(secret in line for secret in ("bot-secret", "llm", "redis@secret"))
