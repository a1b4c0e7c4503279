"""The bot on Telegram's webhook: one of any number of instances behind a load balancer at
TELEGRAM_WEBHOOK_URL (docs/operations.md, "Several bot instances").

Updates arrive through marketrank's own listener (`bot/webhook_door.py`, which checks Host, the
secret and the body), not PTB's `run_webhook`, whose server checks no Host. The Application runs the
way PTB documents for a custom webhook server (its `customwebhookbot` examples): initialize, start,
serve, stop, shut down, with the post_init / post_stop / post_shutdown hooks called in the order
`run_webhook` calls them. Every instance sets the same webhook at start (retried until the Bot API
server answers); none deletes it when it stops, since the others still use it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from aiohttp import web
from telegram import Bot, Update
from telegram.error import InvalidToken, RetryAfter, TelegramError
from telegram.ext import Application

from analysis.errors import first_line
from analysis.settings import Settings
from bot.webhook_door import webhook_app

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0


async def set_webhook(
    bot: Bot, url: str, secret: str, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """setWebhook, retried for as long as it takes (1, 2, 4 ... up to 30 s apart, or what a 429
    asks): the Bot API server may not be up yet. A rejected token is not retried."""
    delay = FIRST_DELAY_S
    while True:
        try:
            await bot.set_webhook(url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
            return
        except InvalidToken:
            raise
        except TelegramError as exc:
            wait = delay
            if isinstance(exc, RetryAfter):
                after = exc.retry_after
                wait = after.total_seconds() if isinstance(after, timedelta) else float(after)
            logger.warning("setWebhook failed (%s); retrying in %.0f s", first_line(exc), wait)
        await sleep(wait)
        delay = min(delay * 2, MAX_DELAY_S)


async def unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` until it ends (True) or `stop` is set first (False; `work` is cancelled)."""
    task, stopped = asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, stopped):
        pending.cancel()
    if task.done() and not task.cancelled():
        task.result()  # its exception, if any (InvalidToken)
        return True
    return False


class CannotListen(Exception):
    """TELEGRAM_WEBHOOK_LISTEN:TELEGRAM_WEBHOOK_PORT cannot be bound (taken, not this host's)."""


async def serve_webhook(application: Application, settings: Settings, stop: asyncio.Event) -> None:
    """Listen, build the services, set the webhook, handle updates until `stop`; then stop taking
    requests, finish the ones in flight, and close the services."""
    url = settings.telegram_webhook_url or ""
    secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else ""
    runner = web.AppRunner(
        webhook_app(application, secret, url, settings.telegram_webhook_hosts), access_log=None
    )  # refusals log themselves, without secrets
    try:
        async with application:  # initialize ... shutdown
            await runner.setup()
            try:
                # Listen first: a taken port stops the bot before anything started; start before
                # setWebhook, so the first update finds the door open and the handlers running.
                try:
                    await web.TCPSite(
                        runner, settings.telegram_webhook_listen, settings.telegram_webhook_port
                    ).start()
                except OSError as exc:  # asyncio's text repeats the address: the system's words only
                    raise CannotListen(os.strerror(exc.errno).lower() if exc.errno else str(exc)) from None
                logger.info(
                    "bot on the webhook %s, listening on %s:%d",
                    url,
                    settings.telegram_webhook_listen,
                    settings.telegram_webhook_port,
                )
                if application.post_init:
                    await application.post_init(application)
                await application.start()
                if await unless_stopped(set_webhook(application.bot, url, secret), stop):
                    await stop.wait()
            finally:
                await runner.cleanup()  # no new request; the requests in flight are answered
                if application.running:  # post_stop after stop only, as run_webhook does
                    await application.stop()
                    if application.post_stop:
                        await application.post_stop(application)
    finally:
        if application.post_shutdown:
            await application.post_shutdown(application)
        logger.info("bot stopped")


def run_on_webhook(application: Application, settings: Settings, loop: asyncio.AbstractEventLoop) -> int:
    """Serve the webhook on `loop` until SIGTERM or SIGINT; the exit status."""
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(serve_webhook(application, settings, stop))
    except CannotListen as exc:
        print(
            f"error: cannot listen on {settings.telegram_webhook_listen}:{settings.telegram_webhook_port} "
            f"({exc}); set TELEGRAM_WEBHOOK_LISTEN / TELEGRAM_WEBHOOK_PORT",
            file=sys.stderr,
        )
        return 1
    return 0
