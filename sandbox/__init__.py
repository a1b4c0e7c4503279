"""The sandbox: a local Telegram Bot API server and a chat page, so the real bot can be tried in a
browser with no Telegram account (`make run` with no TELEGRAM_BOT_TOKEN). The tests run the bot
against the same server."""

from sandbox.errors import MAX_CALLBACK_DATA, MAX_TEXT, NOT_MODIFIED
from sandbox.flood import FloodLimit
from sandbox.formatting import PNG_SIGNATURE
from sandbox.records import (
    Button,
    Call,
    CallbackAnswer,
    CallbackQueryRecord,
    ChatMessage,
    Photo,
    UploadedFile,
)
from sandbox.server import BotApiServer

__all__ = [
    "BotApiServer",
    "Button",
    "Call",
    "CallbackAnswer",
    "CallbackQueryRecord",
    "ChatMessage",
    "FloodLimit",
    "MAX_CALLBACK_DATA",
    "MAX_TEXT",
    "NOT_MODIFIED",
    "PNG_SIGNATURE",
    "Photo",
    "UploadedFile",
]
