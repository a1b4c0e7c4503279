"""Waiting for the Bot API server at start-up: an unreachable server (down, a wrong
TELEGRAM_API_BASE_URL, no network yet) is one log line per attempt and a retry with backoff, not
PTB's traceback and an exit."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram import Bot
from telegram.error import InvalidToken, NetworkError

from analysis.errors import first_line

logger = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0


async def wait_for_bot_api(
    bot: Bot, server: str, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """Initialize `bot` (its getMe), retrying while the server cannot be reached: 1, 2, 4 ... up
    to 60 s apart, for as long as it takes. A rejected token is not retried (InvalidToken)."""
    delay = FIRST_DELAY_S
    while True:
        try:
            await bot.initialize()
            return
        except InvalidToken:
            raise
        except NetworkError as exc:  # TimedOut is one too
            logger.warning(
                "the Bot API server at %s cannot be reached (%s); retrying in %.0f s",
                server,
                first_line(exc),
                delay,
            )
        await sleep(delay)
        delay = min(delay * 2, MAX_DELAY_S)
