"""The sandbox as `make run` and `python -m sandbox` open it: the cast, the chat page and
Telegram's flood control, on 127.0.0.1:<port>, with a bot token and a page secret made per run."""

import secrets
import time

from sandbox.access import SECRET_PARAM
from sandbox.cast import SANDBOX_CAST
from sandbox.flood import FloodLimit
from sandbox.server import BotApiServer
from sandbox.web import ChatPage

BOT_USERNAME = "marketrank_sandbox_bot"


def first_update_id(now: float) -> int:
    """Update ids of a new sandbox start above the last run's (the bot's update ledger in Redis
    remembers handled ids for a day and would skip a reused one): 100 per second of the clock,
    below 2**31, wrapping every 115 days."""
    return int(now) % 10_000_000 * 100


def new_bot_token(bot_id: int = SANDBOX_CAST.bot_id) -> str:
    """A bot token for one run, shaped like Telegram's (`<bot id>:<35 characters>`): a page that
    knew a fixed token could post as the bot."""
    return f"{bot_id}:{secrets.token_urlsafe(26)}"


def open_sandbox(port: int, *, token: str, secret: str) -> BotApiServer:
    """A started sandbox (port 0: a free one) that accepts only `token` for the bot and serves
    its chat page only with `secret`; RuntimeError (caused by the OSError) when the port is
    taken."""
    return BotApiServer(
        token=token,
        port=port,
        bot_username=BOT_USERNAME,
        bot_first_name="marketrank",
        flood=FloodLimit(),
        pages=lambda server: ChatPage(server, SANDBOX_CAST, secret),
        first_update_id=first_update_id(time.time()),
    ).start()


def chat_page_url(server: BotApiServer, secret: str) -> str:
    """The address to open in a browser: it carries the run's secret."""
    return f"{server.url}/?{SECRET_PARAM}={secret}"
