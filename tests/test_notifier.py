"""The card notifier (bot/notifier.py) on its own: a real Redis (gists, the events stream, the
card store), PTB's real Bot over HTTP against the local Bot API server, steps run in this
process. What a trader sees: the card follows the analysis to the end, bursts of progress are
coalesced, a card that can no longer be edited is replaced and remembered, Telegram's flood
control is waited out."""

import asyncio
import random
import re
import uuid

import pytest
import redis.asyncio as aioredis
from telegram import Bot

from analysis.engine.events import EventReader
from analysis.service import AnalysisService
from bot.cards import CardStore
from bot.notifier import CardNotifier
from sandbox import BotApiServer
from tests.helpers import QueueDispatcher, noop_config

INTERVAL_S = 0.3


@pytest.fixture
def api():
    with BotApiServer(token=f"{random.randrange(10**6, 10**9)}:TEST") as server:
        yield server


def status_of(text: str) -> str:
    match = re.search(r" · (\w+)$", text.splitlines()[0])
    return match.group(1) if match else ""


async def with_notifier(api, runtime, body):
    bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
    client = aioredis.Redis.from_url(runtime.settings.redis_url, decode_responses=True)
    events = EventReader(
        client, runtime.keys, group=f"bot:test-{uuid.uuid4().hex[:8]}", consumer="notifier", block_ms=50
    )
    cards = CardStore(client, runtime.keys, runtime.settings.gist_ttl_s)
    # The notifier reads cards through the service; it starts nothing, so no dispatcher runs.
    service = AnalysisService(runtime.store, QueueDispatcher())
    notifier = CardNotifier(bot, service, cards, events, interval_s=INTERVAL_S)
    await bot.initialize()
    await notifier.start()
    try:
        return await body(notifier, cards)
    finally:
        await notifier.stop()
        await bot.shutdown()
        await client.aclose()


def a_chat(api) -> int:
    user = random.randrange(10**8, 10**9)
    api.send_message(user, "/start")  # the user opens the chat with the bot
    return user


def test_the_card_follows_the_analysis_to_the_end_and_bursts_are_coalesced(
    api, runtime, local_service, queue, actor
):
    chat = a_chat(api)
    gist = local_service.start(noop_config(8), actor)

    async def body(notifier, cards):
        location = await notifier.post_card(chat, gist.id)
        assert location is not None and await cards.get(gist.id) == location
        assert status_of(api.message(chat, location.message_id).text) == "Pending"
        mark = api.mark()
        decisions = await asyncio.to_thread(queue.drain, runtime)  # 9 steps, in well under 0.3 s
        assert decisions[-1] == "completed"
        await asyncio.to_thread(
            api.wait_for, lambda: status_of(api.message(chat, location.message_id).text) == "Completed"
        )
        return location, mark

    location, mark = asyncio.run(with_notifier(api, runtime, body))
    card = api.message(chat, location.message_id)
    assert "step 8" in card.text and "100%" in card.text
    edits = api.calls_of("editMessageText", since=mark)
    # Nine step events, a handful of edits: the first at once, the newest state last.
    assert 1 <= len(edits) <= 4, len(edits)
    assert len(api.calls_of("sendMessage", since=mark)) == 0  # edited in place, never re-sent


def card_after_a_fault(api, runtime, local_service, queue, actor, fault):
    """Post a card, inject `fault` on the Bot API, run the analysis to the end, show the card:
    (the card first posted, the card remembered after, the chat)."""
    chat = a_chat(api)
    gist = local_service.start(noop_config(2), actor)

    async def body(notifier, cards):
        first = await notifier.post_card(chat, gist.id)
        fault()
        await asyncio.to_thread(queue.drain, runtime)
        await notifier.show(gist.id)
        return first, await cards.get(gist.id)

    first, after = asyncio.run(with_notifier(api, runtime, body))
    return first, after, chat


def test_a_card_that_can_no_longer_be_edited_is_replaced_and_the_new_one_remembered(
    api, runtime, local_service, queue, actor
):
    old, new, chat = card_after_a_fault(
        api,
        runtime,
        local_service,
        queue,
        actor,
        lambda: api.fail("editMessageText", description="Bad Request: message to edit not found"),
    )
    assert new is not None and new != old and new.chat_id == chat
    assert status_of(api.message(chat, new.message_id).text) == "Completed"


def test_flood_control_is_waited_out_and_the_newest_state_shown(api, runtime, local_service, queue, actor):
    first, after, chat = card_after_a_fault(
        api,
        runtime,
        local_service,
        queue,
        actor,
        lambda: api.rate_limit("editMessageText", times=1, retry_after=1),
    )
    assert after == first and status_of(api.message(chat, first.message_id).text) == "Completed"
    refused = [c for c in api.calls_of("editMessageText") if not c.ok]
    assert len(refused) == 1  # asked to wait once, then the edit went through


def test_the_notifier_stops_promptly_even_right_after_it_started(api, runtime):
    """A bot stopped just after it started (a failed start-up, a quick deploy) must not hang on
    its notifier: a cancellation that lands on the event reader's first Redis command can be
    turned by redis-py (8.2) into an error the reader retries, so stop() cancels until the reader
    is gone, and the reader's loop ends once stop() began. Each start uses a new connection, as a
    starting bot does; stops come at once, after one loop turn, and a few milliseconds later. Run
    on a loop of its own, so that a reader left running fails the test instead of hanging it."""
    bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
    service = AnalysisService(runtime.store, QueueDispatcher())
    stuck: list[int] = []

    async def starts_and_stops() -> None:
        await bot.initialize()
        for attempt in range(120):
            client = aioredis.Redis.from_url(runtime.settings.redis_url, decode_responses=True)
            events = EventReader(client, runtime.keys, group="bot:stop-test", consumer=f"c{attempt}")
            cards = CardStore(client, runtime.keys, runtime.settings.gist_ttl_s)
            notifier = CardNotifier(bot, service, cards, events, interval_s=INTERVAL_S)
            await notifier.start()
            await asyncio.sleep([0, 0, 0.001 * (attempt % 7)][attempt % 3])
            stopping = asyncio.ensure_future(notifier.stop())
            done, _ = await asyncio.wait({stopping}, timeout=10)
            if not done:
                stuck.append(attempt)
                return
            await client.aclose()
        await bot.shutdown()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(starts_and_stops())
    finally:
        loop.close()  # without waiting for a stuck reader
    if stuck:
        pytest.fail(f"notifier.stop() did not return within 10 s (start and stop number {stuck[0]})")
