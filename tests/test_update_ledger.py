"""Each update handled at most once and never lost to an unreachable ledger (bot/update_ledger.py):
the webhook's door in front of a real PTB Application with marketrank's update processor, its
ledger on a real redis-server. The crash-and-redeliver case under long polling is in
tests/test_bot.py; instances as processes, one SIGKILLed mid-tap, in tests/test_bot_webhooks.py."""

import asyncio
import uuid

from tests.servers import RedisServer
from tests.webhook_door_app import DOOR_HEADERS, door_in_front_of
from tests.webhook_instances import rank_update


def through_the_ledger(redis_url: str, scenario, handler_s: float = 0.0) -> list[int]:
    """Run `scenario(post)` (post(update) -> the door's status and text) against a running
    Application whose one handler records each update id it handles (taking `handler_s`); the
    ids handled, in order."""
    import redis.asyncio as aioredis

    from analysis.db.keys import Keys
    from bot.update_ledger import OnceUpdateProcessor, UpdateLedger
    from sandbox import BotApiServer

    async def run(api: BotApiServer) -> list[int]:
        handled: list[int] = []

        async def record(update, context: object) -> None:
            await asyncio.sleep(handler_s)
            handled.append(update.update_id)

        processor = OnceUpdateProcessor(16)
        client = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
        processor.ledger = UpdateLedger(client, Keys(prefix=f"ledger-{uuid.uuid4().hex[:8]}:"), bot_id=7)
        try:
            async with door_in_front_of(api, record, processor) as (application, door):

                async def post(update: dict) -> tuple[int, str]:
                    async with door.post("/telegram", json=update, headers=DOOR_HEADERS) as answer:
                        return answer.status, await answer.text()

                await application.start()
                await scenario(post)
                await application.stop()
        finally:
            await client.aclose()
        return handled

    with BotApiServer(token="1:LEDGER") as api:
        return asyncio.run(run(api))


def test_an_update_delivered_again_while_its_first_delivery_is_handled_is_dropped(redis_url):
    """Telegram retried an update (to another instance, say) while the first delivery is still
    being handled: the second is confirmed and dropped, the command runs once."""
    answers = []

    async def scenario(post) -> None:
        first = asyncio.ensure_future(post(rank_update(3, 42, "/rank top=3")))
        await asyncio.sleep(0.1)
        answers.append(await post(rank_update(3, 42, "/rank top=3")))
        answers.append(await first)
        answers.append(await post(rank_update(3, 42, "/rank top=3")))  # and later again

    assert through_the_ledger(redis_url, scenario, handler_s=0.5) == [3]
    assert [status for status, _ in answers] == [200, 200, 200]


def test_an_update_that_finds_the_ledger_unreachable_is_refused_and_handled_when_it_is_back():
    """Redis down: the door answers 503 and no handler runs (a /rank could otherwise start twice
    on a redelivery); Telegram delivers it again, and once Redis is back it is handled, once."""
    server = RedisServer().start()
    answers = []

    async def scenario(post) -> None:
        server.stop()
        answers.append(await post(rank_update(5, 42, "/rank top=3")))
        server.start()  # the same port: what the bot's client reconnects to
        answers.append(await post(rank_update(5, 42, "/rank top=3")))
        answers.append(await post(rank_update(5, 42, "/rank top=3")))

    try:
        handled = through_the_ledger(server.url, scenario)
    finally:
        server.cleanup()
    (down, down_text), back, again = answers
    assert (down, back[0], again[0], handled) == (503, 200, 200, [5]), answers
    assert "the update ledger cannot be reached" in down_text
