"""The webhook's door in process, in front of a real python-telegram-bot Application whose bot
talks to the sandbox's Bot API server and whose one handler is the test's: for the door's and
the update ledger's in-process tests (tests/test_bot_webhook_door.py, tests/test_update_ledger.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp.test_utils import TestClient, TestServer
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, BaseUpdateProcessor, TypeHandler

from bot.webhook_door import webhook_app
from sandbox import BotApiServer
from tests.webhook_instances import SECRET

DOOR_URL = "https://bot.example.com/telegram"
DOOR_HEADERS = {"Host": "bot.example.com", "X-Telegram-Bot-Api-Secret-Token": SECRET}


@contextlib.asynccontextmanager
async def door_in_front_of(
    api: BotApiServer,
    handler: Callable[[Update, object], Awaitable[None]],
    processor: BaseUpdateProcessor | None = None,
    extra_hosts: tuple[str, ...] = (),
) -> AsyncIterator[tuple[Application, TestClient]]:
    """The initialized Application (not started: the test starts and stops it) with `handler`
    for every update, and a client of its door; both closed after."""
    builder = ApplicationBuilder().token(api.token).base_url(api.base_url).updater(None)
    if processor is not None:
        builder = builder.concurrent_updates(processor)
    application = builder.build()
    application.add_handler(TypeHandler(Update, handler))
    client = TestClient(TestServer(webhook_app(application, SECRET, DOOR_URL, extra_hosts)))
    await client.start_server()
    try:
        async with application:
            yield application, client
    finally:
        await client.close()
