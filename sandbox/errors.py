"""Telegram's limits and error answers, as the sandbox's Bot API server gives them.

The wording copies the real server's where it is known: a bot that matches on it (e.g. "message
is not modified") behaves the same here and in Telegram.
"""

from __future__ import annotations

from typing import Any

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
EDIT_NOT_FOUND = "Bad Request: message to edit not found"
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"

FLOODED = "Too Many Requests: retry after {retry_after}"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64


class BotApiError(Exception):
    """Raised by method handlers; becomes a Bot API error answer."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def bad_request(description: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {description}")
