"""What the sandbox's Bot API server records: calls, chats, messages, buttons, photos, presses.

The public dataclasses are what a test (or the chat page) reads; the underscored ones are the
server's own bookkeeping.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class UploadedFile:
    """One file part of a multipart request."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def size(self) -> int:
        """Number of bytes uploaded."""
        return len(self.data)


@dataclasses.dataclass
class Call:
    """One HTTP call to a Bot API method, as the server saw and answered it.

    ``received``/``answered`` are ``time.monotonic()`` values; ``answered`` stays ``None``
    while the call is in flight (a long poll) or if the client went away first.
    """

    seq: int
    method: str
    params: dict[str, Any]
    files: dict[str, UploadedFile]
    received: float
    answered: float | None = None
    status: int | None = None
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the call was answered with ``{"ok": true}``."""
        return bool(self.response and self.response.get("ok"))

    @property
    def result(self) -> Any:
        """The ``result`` field of a successful answer (``None`` otherwise)."""
        return self.response.get("result") if self.response else None

    @property
    def description(self) -> str | None:
        """The error ``description`` of a failed answer (``None`` otherwise)."""
        return self.response.get("description") if self.response else None

    @property
    def duration(self) -> float | None:
        """Seconds between receiving and answering the call."""
        return None if self.answered is None else self.answered - self.received


@dataclasses.dataclass(frozen=True)
class Button:
    """An inline keyboard button as the user sees it."""

    text: str
    callback_data: str | None = None
    url: str | None = None


@dataclasses.dataclass
class Photo:
    """A photo the bot uploaded (or re-sent by ``file_id``)."""

    file_id: str
    file_unique_id: str
    size: int
    width: int
    height: int
    is_png: bool


@dataclasses.dataclass
class ChatMessage:
    """A message in a chat with its *current* content (edits applied)."""

    chat_id: int
    message_id: int
    from_bot: bool
    from_user: dict[str, Any]
    date: int
    text: str | None = None
    entities: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    photo: Photo | None = None
    reply_markup: dict[str, Any] | None = None
    edit_date: int | None = None
    edits: int = 0
    deleted: bool = False
    history: list[str | None] = dataclasses.field(default_factory=list)
    silent: bool = False  # sent with disable_notification: it arrived without a sound

    @property
    def buttons(self) -> list[list[Button]]:
        """Inline keyboard rows (empty when the message has no inline keyboard)."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [
            [Button(b.get("text", ""), b.get("callback_data"), b.get("url")) for b in row] for row in rows
        ]

    @property
    def button_labels(self) -> list[str]:
        """Labels of all inline buttons, row by row."""
        return [b.text for row in self.buttons for b in row]

    def button_data(self, label: str) -> str:
        """Callback data of the button labelled ``label``; KeyError naming the labels if absent."""
        for row in self.buttons:
            for button in row:
                if button.text == label:
                    if button.callback_data is None:
                        raise KeyError(f"button {label!r} has no callback_data")
                    return button.callback_data
        raise KeyError(f"no button {label!r} on message {self.message_id}; have {self.button_labels}")


@dataclasses.dataclass
class CallbackAnswer:
    """How the bot answered a callback query (``answerCallbackQuery``)."""

    query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None
    answered: float


@dataclasses.dataclass
class CallbackQueryRecord:
    """A button press made through :meth:`BotApiServer.press_button`."""

    query_id: str
    update_id: int
    user_id: int
    chat_id: int
    message_id: int
    data: str
    pressed: float
    answer: CallbackAnswer | None = None


@dataclasses.dataclass
class _Fault:
    status: int | None  # None: only a delay, then normal processing
    description: str = ""
    parameters: dict[str, Any] | None = None
    delay: float = 0.0
    chat_id: int | None = None  # only calls to this chat; None: any call of the method


@dataclasses.dataclass
class _Update:
    update_id: int
    kind: str
    payload: dict[str, Any]
    queued: float
    delivered: float | None = None


@dataclasses.dataclass
class _Chat:
    info: dict[str, Any]
    messages: dict[int, ChatMessage] = dataclasses.field(default_factory=dict)
    next_message_id: int = 1
    members: dict[int, str] = dataclasses.field(default_factory=dict)  # user id -> status (groups)
    deleted: bool = False  # a deleted group: "chat not found"


@dataclasses.dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    width: int
    height: int
    is_png: bool
