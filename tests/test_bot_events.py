"""The notifier's Redis side against a real Redis: the events stream read through a consumer group
(nothing lost across a restart) and the card store."""

import asyncio
import uuid

import redis.asyncio as aioredis

from analysis.db.keys import Keys
from analysis.engine.events import EventReader
from bot.cards import CardLocation, CardStore


def run(coro):
    return asyncio.run(coro)


def fields(analysis_id: str, seq: int) -> dict:
    return {
        "id": analysis_id,
        "kind": "step",
        "status": "RUNNING",
        "seq": seq,
        "progress": seq / 10,
        "confidence": 0,
        "at": 1.5,
        "reason": "",
    }


async def scenario(redis_url: str, body):
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(f"t{uuid.uuid4().hex[:8]}:")
    try:
        return await body(client, keys)
    finally:
        await client.delete(keys.events())
        await client.aclose()


def reader(client, keys, **kw) -> EventReader:
    return EventReader(client, keys, group="bot:1", consumer="notifier", block_ms=50, **kw)


def test_unacknowledged_events_are_read_again_after_a_restart(redis_url):
    async def body(client, keys):
        first = reader(client, keys, count=2)
        await first.ensure_group()
        await first.ensure_group()  # idempotent
        for seq in range(5):
            await client.xadd(keys.events(), fields("a", seq))
        read, _ = await first.read()
        assert [e.seq for e in read] == [0, 1] and read[0].progress == 0.0 and read[1].analysis_id == "a"
        await first.ack([read[0].entry_id])
        read, _ = await first.read()
        assert [e.seq for e in read] == [2, 3]  # and then the process dies before acknowledging
        await client.xdel(keys.events(), read[1].entry_id)  # trimmed away while pending

        again = reader(client, keys, count=2)  # the restarted bot: pending entries first, in order
        seen, dropped = [], []
        while not seen or seen[-1] != 4:
            events, malformed = await again.read()
            seen += [e.seq for e in events]
            dropped += malformed
            await again.ack([e.entry_id for e in events] + malformed)
        assert seen == [1, 2, 4] and dropped == [read[1].entry_id]
        assert await again.pending_count() == 0

    run(scenario(redis_url, body))


def test_malformed_entries_are_handed_back_for_acknowledging(redis_url):
    async def body(client, keys):
        events = reader(client, keys)
        await events.ensure_group()
        bad = await client.xadd(keys.events(), {"kind": "step"})  # no analysis id
        await client.xadd(keys.events(), {"id": "b", "seq": "x"})
        await client.xadd(keys.events(), fields("c", 1))
        good, malformed = await events.read()
        assert [e.analysis_id for e in good] == ["c"] and malformed[0] == bad and len(malformed) == 2

    run(scenario(redis_url, body))


def test_a_lost_group_is_created_again(redis_url):
    async def body(client, keys):
        events = reader(client, keys)
        await events.ensure_group()
        await client.delete(keys.events())  # e.g. a flushed Redis
        assert await events.read() == ([], [])
        await client.xadd(keys.events(), fields("d", 1))
        got = []
        for _ in range(3):
            got += (await events.read())[0]
        assert [e.analysis_id for e in got] == ["d"]

    run(scenario(redis_url, body))


def test_card_store_remembers_where_the_card_is(redis_url):
    async def body(client, keys):
        cards = CardStore(client, keys, ttl_s=60)
        assert await cards.get("x") is None
        await cards.save("x", CardLocation(-100123, 42))
        assert await cards.get("x") == CardLocation(-100123, 42)
        assert 0 < await client.ttl(keys.card("x")) <= 60
        await client.delete(keys.card("x"))

    run(scenario(redis_url, body))
