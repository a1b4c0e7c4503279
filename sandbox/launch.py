"""The sandbox as `make run` and `python -m sandbox` open it: the cast, the chat page and
Telegram's flood control, on 127.0.0.1:<port>."""

from sandbox.cast import SANDBOX_CAST
from sandbox.flood import FloodLimit
from sandbox.server import BotApiServer

BOT_USERNAME = "marketrank_sandbox_bot"


def open_sandbox(port: int) -> BotApiServer:
    """A started sandbox; RuntimeError (caused by the OSError) when the port is taken."""
    return BotApiServer(token=SANDBOX_CAST.token, port=port, bot_username=BOT_USERNAME,
                        bot_first_name="marketrank", flood=FloodLimit(), chat_page=SANDBOX_CAST).start()
