"""A local Telegram Bot API server for tests and benchmarks.

``BotApiServer`` speaks enough of the Bot API over real HTTP for the unmodified
python-telegram-bot ``Application`` to run against it: long polling, messages with
inline keyboards, callback queries, edits, photo uploads and bot commands. It also
plays the user's side (``send_message``, ``press_button``) and keeps what a user
would see in each chat, so a test can assert on the chat rather than on mocks.

The server runs an aiohttp application on ``127.0.0.1`` (a free port) inside a
background thread with its own asyncio loop, so the bot under test can live in the
test process (on any loop or thread) or in a subprocess that is restarted mid-test.
Every public method is synchronous and thread-safe.

Point PTB at it::

    with BotApiServer(token="123:TEST") as api:
        app = (
            ApplicationBuilder()
            .token(api.token)
            .base_url(api.base_url)            # http://127.0.0.1:PORT/bot
            .base_file_url(api.base_file_url)  # http://127.0.0.1:PORT/file/bot
            .build()
        )

PTB appends the token, then ``/<method>``: ``http://127.0.0.1:PORT/bot123:TEST/getMe``.
``api.base_url`` is also the value for the bot's ``TELEGRAM_API_BASE_URL`` setting.

Fidelity notes (what is deliberately *not* emulated): ``parse_mode="HTML"`` is parsed
into plain text plus entities, but Markdown / MarkdownV2 text is stored verbatim with
no entities; inline-mode messages (``inline_message_id``), webhooks, media groups,
URL uploads and Telegram's automatic flood limits are not emulated (inject 429s with
:meth:`BotApiServer.rate_limit` instead). Error descriptions copy the real server's
wording where it is known.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import html.parser
import itertools
import json
import re
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

__all__ = [
    "BotApiServer",
    "Button",
    "Call",
    "CallbackAnswer",
    "CallbackQueryRecord",
    "ChatMessage",
    "Photo",
    "UploadedFile",
    "NOT_MODIFIED",
    "PNG_SIGNATURE",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
EDIT_NOT_FOUND = "Bad Request: message to edit not found"
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64

# Form and multipart bodies carry every value as a string; these tell how Telegram
# reads them back, so that recorded params look the same whatever the transport.
_JSON_FIELDS = frozenset(
    {
        "reply_markup", "entities", "caption_entities", "commands", "scope",
        "allowed_updates", "link_preview_options", "reply_parameters", "media",
        "results", "menu_button", "message_ids",
    }
)
_INT_FIELDS = frozenset(
    {
        "chat_id", "message_id", "offset", "limit", "timeout", "user_id", "from_chat_id",
        "message_thread_id", "cache_time", "reply_to_message_id", "max_connections",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "show_alert", "drop_pending_updates", "disable_notification", "protect_content",
        "disable_web_page_preview", "has_spoiler", "allow_sending_without_reply",
        "show_caption_above_media", "revoke_messages",
    }
)
_NUMERIC = re.compile(r"^-?\d+$")
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


# --------------------------------------------------------------------------- records


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

    @property
    def buttons(self) -> list[list[Button]]:
        """Inline keyboard rows (empty when the message has no inline keyboard)."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [
            [Button(b.get("text", ""), b.get("callback_data"), b.get("url")) for b in row]
            for row in rows
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


class BotApiError(Exception):
    """Raised by method handlers; becomes a Bot API error answer."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _bad_request(description: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {description}")


@dataclasses.dataclass
class _Fault:
    status: int | None  # None: only a delay, then normal processing
    description: str = ""
    parameters: dict[str, Any] | None = None
    delay: float = 0.0


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


@dataclasses.dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    width: int
    height: int
    is_png: bool


# ------------------------------------------------------------------ text formatting


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


class _HtmlEntityParser(html.parser.HTMLParser):
    """Turns Telegram-flavoured HTML into plain text plus MessageEntity dicts."""

    _SIMPLE = {
        "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
        "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
        "del": "strikethrough", "tg-spoiler": "spoiler", "code": "code", "pre": "pre",
        "a": "text_link", "blockquote": "blockquote", "span": "spoiler",
        "tg-emoji": "custom_emoji",
    }

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self._source = source
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self._parts: list[str] = []
        self._offset = 0
        self._stack: list[tuple[str, dict[str, str | None], int]] = []
        self.entities: list[dict[str, Any]] = []

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def _byte_offset(self) -> int:
        line, column = self.getpos()
        return len(self._source[: self._line_starts[line - 1] + column].encode())

    def _fail(self, reason: str) -> None:
        raise _bad_request(f"can't parse entities: {reason} at byte offset {self._byte_offset()}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag not in self._SIMPLE or (tag == "span" and attributes.get("class") != "tg-spoiler"):
            self._fail(f'Unsupported start tag "{tag}"')
        self._stack.append((tag, attributes, self._offset))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._fail(f'Unsupported start tag "{tag}"')

    def handle_endtag(self, tag: str) -> None:
        if not self._stack or self._stack[-1][0] != tag:
            self._fail(f'Unmatched end tag "{tag}"')
        start_tag, attributes, start = self._stack.pop()
        length = self._offset - start
        if length == 0:
            return
        # <pre><code class="language-x"> is one pre entity with a language, not two.
        if tag == "code" and self._stack and self._stack[-1][0] == "pre":
            language = (attributes.get("class") or "").removeprefix("language-")
            if language:
                pre_tag, pre_attrs, pre_start = self._stack[-1]
                self._stack[-1] = (pre_tag, {**pre_attrs, "_language": language}, pre_start)
            return
        entity: dict[str, Any] = {"type": self._SIMPLE[start_tag], "offset": start, "length": length}
        if start_tag == "a":
            entity["url"] = attributes.get("href") or ""
        elif start_tag == "pre" and attributes.get("_language"):
            entity["language"] = attributes["_language"]
        elif start_tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        elif start_tag == "tg-emoji":
            entity["custom_emoji_id"] = attributes.get("emoji-id") or ""
        self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self._parts.append(data)
        self._offset += utf16_len(data)

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        self.close()
        if self._stack:
            raise _bad_request(
                f'can\'t parse entities: Can\'t find end tag corresponding to start tag "{self._stack[-1][0]}"'
            )
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return self.text, self.entities


def render_text(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities as Telegram would store them for this input.

    HTML is parsed; Markdown flavours are kept verbatim (not emulated).
    """
    if parse_mode and parse_mode.lower() == "html":
        parser = _HtmlEntityParser(text)
        parser.feed(text)
        return parser.finish()
    return text, list(entities or [])


def command_entities(text: str) -> list[dict[str, Any]]:
    """A bot_command entity for a leading ``/command[@bot]``, as Telegram adds it."""
    match = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
    if not match:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG image, or None if ``data`` is neither."""
    if data.startswith(PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data.startswith(JPEG_SIGNATURE):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            (segment,) = struct.unpack(">H", data[i + 2 : i + 4])
            i += 2 + segment
        return 0, 0
    return None


# ------------------------------------------------------------------- request parsing


def _coerce(name: str, value: Any) -> Any:
    """Read a parameter the way Telegram does, whatever the transport."""
    if not isinstance(value, str):
        return value
    if name in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            raise _bad_request(f"can't parse {name} JSON object") from None
    if name in _INT_FIELDS and _NUMERIC.match(value):
        return int(value)
    if name in _BOOL_FIELDS:
        return value.lower() in ("true", "1")
    return value


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Parameters from the query string plus a JSON, urlencoded or multipart body."""
    raw: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad_request("can't parse JSON") from None
            if not isinstance(body, dict):
                raise _bad_request("JSON body must be an object")
            raw.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files[name] = UploadedFile(name, value.filename, value.content_type, value.file.read())
                else:
                    raw[name] = value
    return {name: _coerce(name, value) for name, value in raw.items()}, files


# ---------------------------------------------------------------------------- server


class BotApiServer:
    """An in-process Telegram Bot API server with a synchronous, thread-safe test API.

    State (chats, queued updates, the call record) lives as long as the object, across
    any number of bot restarts. Use as a context manager or call :meth:`start` and
    :meth:`stop`.
    """

    def __init__(
        self,
        token: str = "123:TEST",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "marketrank_test_bot",
        bot_first_name: str = "MarketRank Test",
    ):
        """Configure the server; nothing listens until :meth:`start`.

        ``token`` is the only token accepted (others get 401). Its numeric prefix is the
        bot's user id. ``port=0`` picks a free port.
        """
        self.token = token
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 1
        self.bot_user: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        # Message.from carries only the basic User fields.
        self._bot_sender = {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._updates: list[_Update] = []
        self._all_updates: dict[int, _Update] = {}  # every update ever queued, for redelivery
        self._update_ids = itertools.count(100_000)
        self._query_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._allowed_updates: list[str] | None = None
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._queries: dict[str, CallbackQueryRecord] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._faults: dict[str, collections.deque[_Fault]] = collections.defaultdict(collections.deque)

        # Owned by the server thread / loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._pollers: set[asyncio.Future[str]] = set()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

        # lower-cased name -> (canonical name, handler); handlers may be coroutines.
        self._methods: dict[str, tuple[str, Callable[[dict[str, Any], dict[str, UploadedFile]], Any]]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getUpdates": self._get_updates,
                "getMe": self._get_me,
                "logOut": self._true,
                "close": self._true,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "sendPhoto": self._send_photo,
                "sendChatAction": self._true,
                "editMessageText": self._edit_message_text,
                "editMessageCaption": self._edit_message_caption,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getFile": self._get_file,
            }.items()
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Root URL of the server, e.g. ``http://127.0.0.1:PORT``."""
        if self.port is None:
            raise RuntimeError("BotApiServer is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for PTB's ``base_url`` / ``TELEGRAM_API_BASE_URL`` (PTB appends the token)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for PTB's ``base_file_url`` (PTB appends the token)."""
        return f"{self.url}/file/bot"

    def start(self, timeout: float = 10.0) -> BotApiServer:
        """Start listening in a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("BotApiServer already started")
        self._thread = threading.Thread(target=self._serve, name="BotApiServer", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("BotApiServer did not start")
        if self._start_error is not None:
            raise RuntimeError("BotApiServer failed to start") from self._start_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Answer pending long polls, close the listener and join the thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("BotApiServer thread did not stop")

    def __enter__(self) -> BotApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        # handler_cancellation: a bot that disconnects mid long poll frees its poller.
        self._runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        self._wake_pollers("stopping")
        if self._runner is not None:
            await self._runner.cleanup()

    # --------------------------------------------------------------- user's side

    def send_message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        first_name: str = "Tester",
        username: str | None = None,
    ) -> int:
        """Queue an update: ``user_id`` writes ``text`` in ``chat_id`` (their private chat by default).

        A leading ``/command`` gets a bot_command entity, so PTB's CommandHandler matches.
        The message shows up in the chat view. Returns the update_id.
        """
        with self._lock:
            user = self._user(user_id, first_name, username)
            chat = self._chat(user_id if chat_id is None else chat_id, user)
            message = self._add_message(
                chat, from_bot=False, from_user=user, text=text, entities=command_entities(text)
            )
            return self._queue_update("message", self._message_json(message))

    def press_button(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        first_name: str = "Tester",
        username: str | None = None,
        force: bool = False,
    ) -> str:
        """Queue an update: ``user_id`` presses a button with callback ``data`` on a bot message.

        ``data`` is sent as given (it need not match any button: clients can forge it) but
        must fit Telegram's 64-byte limit. The update carries the message with its current
        text and reply_markup. An unknown message is a test bug (KeyError) unless
        ``force=True``, which sends it as an inaccessible message (``date`` 0).
        Returns the callback query id.
        """
        if len(data.encode()) > MAX_CALLBACK_DATA:
            raise ValueError(f"callback data is {len(data.encode())} bytes; Telegram allows {MAX_CALLBACK_DATA}")
        with self._lock:
            user = self._user(user_id, first_name, username)
            chat = self._chat(user_id if chat_id is None else chat_id, user)
            message = chat.messages.get(message_id)
            if message is not None and not message.deleted:
                message_json = self._message_json(message)
            elif force:
                message_json = {"message_id": message_id, "chat": dict(chat.info), "date": 0}
            else:
                raise KeyError(f"no message {message_id} in chat {chat.info['id']}")
            query_id = str(4_000_000_000_000 + next(self._query_ids))
            payload = {
                "id": query_id,
                "from": user,
                "message": message_json,
                "chat_instance": str(abs(chat.info["id"]) * 7919 + 17),
                "data": data,
            }
            update_id = self._queue_update("callback_query", payload)
            self._queries[query_id] = CallbackQueryRecord(
                query_id, update_id, user_id, chat.info["id"], message_id, data, time.monotonic()
            )
            return query_id

    def press(self, user_id: int, message_id: int, label: str, *, chat_id: int | None = None) -> str:
        """Press the button labelled ``label`` (its real callback data); returns the query id."""
        data = self.button_data(user_id if chat_id is None else chat_id, message_id, label)
        return self.press_button(user_id, message_id, data, chat_id=chat_id)

    def queue_update(self, kind: str, payload: dict[str, Any]) -> int:
        """Queue a raw update ``{"update_id": ..., kind: payload}``; returns the update_id."""
        with self._lock:
            return self._queue_update(kind, copy.deepcopy(payload))

    def deliver_again(self, update_id: int) -> None:
        """Queue an already confirmed update once more, with its own update_id: what Telegram
        does after a bot crashed before confirming the batch it was handling."""
        with self._lock:
            old = self._all_updates[update_id]
            self._updates.append(_Update(update_id, old.kind, copy.deepcopy(old.payload), time.monotonic()))
            self._updates.sort(key=lambda u: u.update_id)
            self._changed.notify_all()
            self._call_in_loop(self._wake_pollers, "update")

    @property
    def pending_updates(self) -> list[int]:
        """Ids of queued updates the bot has not yet confirmed (via a higher ``offset``)."""
        with self._lock:
            return [u.update_id for u in self._updates]

    # ------------------------------------------------------------------- records

    @property
    def calls(self) -> list[Call]:
        """Every call received so far, in order (copies; in-flight calls have ``answered=None``)."""
        with self._lock:
            return [copy.copy(c) for c in self._calls]

    def calls_of(self, method: str, *, since: int = 0) -> list[Call]:
        """Calls of ``method`` (case-insensitive) with ``seq >= since``."""
        wanted = method.lower()
        with self._lock:
            return [copy.copy(c) for c in self._calls[since:] if c.method.lower() == wanted]

    def mark(self) -> int:
        """A position in the call record; pass it as ``since=`` to only see later calls."""
        with self._lock:
            return len(self._calls)

    @property
    def unknown_calls(self) -> list[Call]:
        """Calls of methods the emulator does not implement (answered 404)."""
        with self._lock:
            return [copy.copy(c) for c in self._calls if c.method.lower() not in self._methods]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate()`` is truthy and return its value; TimeoutError otherwise.

        The predicate is re-evaluated whenever the emulator's state changes (a call
        received or answered, an update queued or delivered). It runs with the
        emulator's lock held: keep it quick; calling this object's methods is fine.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s; {self._summary()}")
                self._changed.wait(remaining)

    def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], Any] | None = None,
        *,
        since: int = 0,
        timeout: float = 5.0,
    ) -> Call:
        """Block until an *answered* call of ``method`` (seq >= ``since``) matches; return it."""

        wanted = method.lower()
        scanned = since  # calls before this index are answered and did not match

        def find() -> Call | None:
            nonlocal scanned
            contiguous = True
            for index in range(scanned, len(self._calls)):
                call = self._calls[index]
                if call.answered is None:
                    contiguous = False
                    continue
                if call.method.lower() == wanted and (predicate is None or predicate(copy.copy(call))):
                    return copy.copy(call)
                if contiguous:
                    scanned = index + 1
            return None

        try:
            return self.wait_for(find, timeout)
        except TimeoutError:
            raise TimeoutError(f"no answered {method} call within {timeout}s; {self._summary()}") from None

    @property
    def callback_answers(self) -> dict[str, CallbackAnswer]:
        """Answers to callback queries, by query id."""
        with self._lock:
            return {q: copy.copy(r.answer) for q, r in self._queries.items() if r.answer is not None}

    @property
    def callback_queries(self) -> dict[str, CallbackQueryRecord]:
        """Every press made through :meth:`press_button`, by query id."""
        with self._lock:
            return {q: copy.deepcopy(r) for q, r in self._queries.items()}

    def wait_for_callback_answer(self, query_id: str, timeout: float = 5.0) -> CallbackAnswer:
        """Block until the bot answers callback query ``query_id``."""
        return self.wait_for(lambda: self.callback_answers.get(query_id), timeout)

    # ----------------------------------------------------------------- chat view

    def chat_ids(self) -> list[int]:
        """Ids of every chat the emulator knows."""
        with self._lock:
            return list(self._chats)

    def messages(
        self, chat_id: int, *, from_bot: bool | None = None, include_deleted: bool = False
    ) -> list[ChatMessage]:
        """Messages of a chat in order (copies), optionally only the bot's or the user's."""
        with self._lock:
            chat = self._chats.get(chat_id)
            found = [] if chat is None else list(chat.messages.values())
            return [
                copy.deepcopy(m)
                for m in found
                if (from_bot is None or m.from_bot == from_bot) and (include_deleted or not m.deleted)
            ]

    def message(self, chat_id: int, message_id: int) -> ChatMessage:
        """One message as it is now (KeyError if unknown)."""
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None or message_id not in chat.messages:
                raise KeyError(f"no message {message_id} in chat {chat_id}")
            return copy.deepcopy(chat.messages[message_id])

    def last_message(self, chat_id: int, *, from_bot: bool = True) -> ChatMessage:
        """The latest (undeleted) bot message of a chat, or the user's with ``from_bot=False``."""
        found = self.messages(chat_id, from_bot=from_bot)
        if not found:
            raise KeyError(f"no {'bot' if from_bot else 'user'} message in chat {chat_id}")
        return found[-1]

    def buttons(self, chat_id: int, message_id: int) -> list[list[Button]]:
        """Inline keyboard rows of a message."""
        return self.message(chat_id, message_id).buttons

    def button_data(self, chat_id: int, message_id: int, label: str) -> str:
        """Callback data of the button labelled ``label`` on a message (KeyError if absent)."""
        return self.message(chat_id, message_id).button_data(label)

    def file_bytes(self, file_id: str) -> bytes:
        """The bytes uploaded under ``file_id``."""
        with self._lock:
            return self._files[file_id].data

    def commands(self, *, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, str]]:
        """The command list set with setMyCommands for a scope and language."""
        with self._lock:
            return copy.deepcopy(self._commands.get(self._scope_key(scope, language_code), []))

    # ------------------------------------------------------------ fault injection

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and ``retry_after`` seconds."""
        fault = _Fault(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        self._add_fault(method, fault, times)

    def fail(self, method: str, status: int = 400, description: str = "Bad Request: injected", times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``status`` and ``description``."""
        self._add_fault(method, _Fault(status, description), times)

    def delay(self, method: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``method`` for ``seconds`` before processing them."""
        self._add_fault(method, _Fault(None, delay=seconds), times)

    def clear_faults(self) -> None:
        """Forget every fault not yet consumed."""
        with self._lock:
            self._faults.clear()

    def _add_fault(self, method: str, fault: _Fault, times: int) -> None:
        with self._lock:
            self._faults[method.lower()].extend(copy.copy(fault) for _ in range(times))

    # ------------------------------------------------------------- HTTP handling

    async def _handle_method(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        canonical, handler = self._methods.get(name.lower(), (name, None))
        call = Call(-1, canonical, {}, {}, time.monotonic())
        try:
            call.params, call.files = await _read_params(request)
        except BotApiError as exc:
            self._record(call)
            return self._answer(call, self._error_body(exc))
        self._record(call)
        if request.match_info["token"] != self.token:
            return self._answer(call, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if handler is None:
            return self._answer(call, {"ok": False, "error_code": 404, "description": "Not Found: method not found"})
        try:
            fault = self._take_fault(canonical)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                raise BotApiError(fault.status, fault.description, fault.parameters)
            if asyncio.iscoroutinefunction(handler):
                result = await handler(call.params, call.files)
            else:
                with self._lock:
                    result = handler(call.params, call.files)
            body = {"ok": True, "result": result}
        except BotApiError as exc:
            body = self._error_body(exc)
        return self._answer(call, body)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        with self._lock:
            stored = self._files_by_path.get(request.match_info["path"])
        if stored is None:
            return self._json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        content_type = "image/png" if stored.is_png else "image/jpeg"
        return web.Response(body=stored.data, content_type=content_type)

    def _record(self, call: Call) -> None:
        with self._changed:
            call.seq = len(self._calls)
            self._calls.append(call)
            self._changed.notify_all()

    def _answer(self, call: Call, body: dict[str, Any]) -> web.Response:
        status = 200 if body.get("ok") else int(body["error_code"])
        with self._changed:
            call.answered = time.monotonic()
            call.status = status
            call.response = body
            self._changed.notify_all()
        return self._json(status, body)

    @staticmethod
    def _json(status: int, body: dict[str, Any]) -> web.Response:
        return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    @staticmethod
    def _error_body(exc: BotApiError) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
        if exc.parameters:
            body["parameters"] = exc.parameters
        return body

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(method.lower())
            return queue.popleft() if queue else None

    def _summary(self) -> str:
        with self._lock:
            counts = collections.Counter(c.method for c in self._calls)
            tail = [f"{c.method}->{c.status}" for c in self._calls[-6:]]
        return f"calls so far {dict(counts)}; last {tail}"

    # ---------------------------------------------------------------- long polling

    async def _get_updates(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> list[dict[str, Any]]:
        """Telegram's getUpdates: confirm below ``offset``, wait up to ``timeout`` for updates."""
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        with self._changed:
            self._confirm(offset)
            if params.get("allowed_updates") is not None:
                self._allowed_updates = list(params["allowed_updates"]) or None
            self._changed.notify_all()
        # Like Telegram, a newer getUpdates ends any older one still waiting.
        self._wake_pollers("conflict")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = self._take_batch(offset, limit)
            remaining = deadline - loop.time()
            if batch or remaining <= 0:
                return batch
            waiter: asyncio.Future[str] = loop.create_future()
            self._pollers.add(waiter)
            try:
                await asyncio.wait({waiter}, timeout=remaining)
            finally:
                self._pollers.discard(waiter)
            if waiter.done() and waiter.result() == "conflict":
                raise BotApiError(409, CONFLICT)
            if waiter.done() and waiter.result() == "stopping":
                return []

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u.update_id >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _take_batch(self, offset: int, limit: int) -> list[dict[str, Any]]:
        with self._changed:
            allowed = self._allowed_updates
            if allowed is not None:
                self._updates = [u for u in self._updates if u.kind in allowed]
            batch = [u for u in self._updates if u.update_id >= offset][:limit]
            now = time.monotonic()
            for update in batch:
                update.delivered = update.delivered or now
            if batch:
                self._changed.notify_all()
            return [{"update_id": u.update_id, u.kind: copy.deepcopy(u.payload)} for u in batch]

    def _queue_update(self, kind: str, payload: dict[str, Any]) -> int:
        """Append an update (lock held) and wake long polls."""
        update = _Update(next(self._update_ids), kind, payload, time.monotonic())
        self._all_updates[update.update_id] = update
        self._updates.append(update)
        self._changed.notify_all()
        self._call_in_loop(self._wake_pollers, "update")
        return update.update_id

    def _wake_pollers(self, reason: str) -> None:
        for waiter in list(self._pollers):
            if not waiter.done():
                waiter.set_result(reason)

    def _call_in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed between the check and the call
            pass

    # --------------------------------------------------------------- chat model

    def _user(self, user_id: int, first_name: str, username: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
        if username:
            user["username"] = username
        self._users[user_id] = user
        return user

    def _chat(self, chat_id: int, user: dict[str, Any] | None = None) -> _Chat:
        """The chat with this id, created on first use (private if positive, else a group)."""
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id > 0:
                owner = user if user and user["id"] == chat_id else self._users.get(chat_id, {})
                info = {"id": chat_id, "type": "private", "first_name": owner.get("first_name", f"User{chat_id}")}
                if owner.get("username"):
                    info["username"] = owner["username"]
            else:
                kind = "supergroup" if chat_id < -1_000_000_000_000 else "group"
                info = {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}
            chat = self._chats[chat_id] = _Chat(info)
        elif user is not None and chat.info["type"] == "private" and user["id"] == chat_id:
            # The user's name may have been unknown when the bot wrote first.
            chat.info["first_name"] = user["first_name"]
            if user.get("username"):
                chat.info["username"] = user["username"]
        return chat

    def _add_message(self, chat: _Chat, *, from_bot: bool, from_user: dict[str, Any], **content: Any) -> ChatMessage:
        message = ChatMessage(
            chat_id=chat.info["id"],
            message_id=chat.next_message_id,
            from_bot=from_bot,
            from_user=from_user,
            date=int(time.time()),
            **content,
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        return message

    def _message_json(self, message: ChatMessage) -> dict[str, Any]:
        """The Bot API Message object for a stored message."""
        chat = self._chats[message.chat_id]
        data: dict[str, Any] = {
            "message_id": message.message_id,
            "from": dict(message.from_user),
            "chat": dict(chat.info),
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if message.text is not None:
            data["text"] = message.text
            if message.entities:
                data["entities"] = copy.deepcopy(message.entities)
        if message.photo is not None:
            p = message.photo
            data["photo"] = [
                {"file_id": p.file_id, "file_unique_id": p.file_unique_id, "width": p.width,
                 "height": p.height, "file_size": p.size}
            ]
            if message.caption is not None:
                data["caption"] = message.caption
                if message.caption_entities:
                    data["caption_entities"] = copy.deepcopy(message.caption_entities)
        if message.reply_markup:
            data["reply_markup"] = copy.deepcopy(message.reply_markup)
        return data

    def _target_chat(self, params: dict[str, Any]) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if not isinstance(chat_id, int):
            raise _bad_request("chat not found")
        return self._chat(chat_id)

    def _editable(self, params: dict[str, Any]) -> ChatMessage:
        if "inline_message_id" in params:
            raise _bad_request("inline messages are not emulated")
        chat = self._chats.get(params.get("chat_id"))  # type: ignore[arg-type]
        message = chat.messages.get(params.get("message_id")) if chat else None  # type: ignore[arg-type]
        if message is None or message.deleted:
            raise _bad_request(EDIT_NOT_FOUND.removeprefix("Bad Request: "))
        if not message.from_bot:
            raise _bad_request("message can't be edited")
        return message

    @staticmethod
    def _markup(params: dict[str, Any]) -> dict[str, Any] | None:
        """Validated reply_markup; an empty inline keyboard counts as none."""
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad_request("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
        for button in (b for row in rows for b in row):
            if not isinstance(button, dict) or not button.get("text"):
                raise _bad_request("BUTTON_TEXT_INVALID")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                raise _bad_request("BUTTON_DATA_INVALID")
            if len(button) == 1:
                raise _bad_request("text buttons are unallowed in the inline keyboard")
        if not any(rows):
            return None
        return markup

    def _apply_edit(self, message: ChatMessage, **changes: Any) -> dict[str, Any]:
        """Apply changes unless nothing differs (Telegram's 400), then return the Message."""
        if all(getattr(message, field) == value for field, value in changes.items()):
            raise BotApiError(400, NOT_MODIFIED)
        message.history.append(message.text if message.photo is None else message.caption)
        for field, value in changes.items():
            setattr(message, field, value)
        message.edits += 1
        message.edit_date = int(time.time())
        return self._message_json(message)

    # --------------------------------------------------------------- Bot API methods
    # Each takes (params, files), runs with the lock held, returns the JSON result or
    # raises BotApiError.

    def _true(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        return True

    def _get_me(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        return dict(self.bot_user)

    def _delete_webhook(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    def _send_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        chat = self._target_chat(params)
        text, entities = render_text(str(params.get("text") or ""), params.get("parse_mode"), params.get("entities"))
        if not text.strip():
            raise _bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise _bad_request("message is too long")
        markup = self._markup(params)
        message = self._add_message(
            chat, from_bot=True, from_user=self._bot_sender, text=text, entities=entities, reply_markup=markup
        )
        return self._message_json(message)

    def _send_photo(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        chat = self._target_chat(params)
        photo = self._photo(params, files)
        caption, caption_entities = None, []
        if params.get("caption"):
            caption, caption_entities = render_text(
                str(params["caption"]), params.get("parse_mode"), params.get("caption_entities")
            )
            if utf16_len(caption) > MAX_CAPTION:
                raise _bad_request("message caption is too long")
        message = self._add_message(
            chat, from_bot=True, from_user=self._bot_sender, photo=photo, caption=caption,
            caption_entities=caption_entities, reply_markup=self._markup(params),
        )
        return self._message_json(message)

    def _photo(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Photo:
        """The uploaded photo (multipart part ``photo`` or an ``attach://`` part) or a known file_id."""
        value = params.get("photo")
        upload = files.get("photo")
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
        if upload is not None:
            size = image_size(upload.data)
            if size is None:
                raise _bad_request("IMAGE_PROCESS_FAILED")
            stored = self._store_file(upload.data, *size, is_png=upload.data.startswith(PNG_SIGNATURE))
        elif isinstance(value, str) and value in self._files:
            stored = self._files[value]
        else:
            raise _bad_request("wrong file identifier/HTTP URL specified")
        return Photo(
            stored.file_id, stored.file_unique_id, len(stored.data), stored.width, stored.height, stored.is_png
        )

    def _store_file(self, data: bytes, width: int, height: int, *, is_png: bool) -> _StoredFile:
        n = next(self._file_ids)
        extension = "png" if is_png else "jpg"
        path = f"photos/file_{n}.{extension}"
        stored = _StoredFile(f"AgAC{n:08d}", f"AQAD{n:08d}", path, data, width, height, is_png)
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _get_file(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        stored = self._files.get(str(params.get("file_id")))
        if stored is None:
            raise _bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _edit_message_text(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        message = self._editable(params)
        if message.text is None:
            raise _bad_request("there is no text in the message to edit")
        text, entities = render_text(str(params.get("text") or ""), params.get("parse_mode"), params.get("entities"))
        if not text.strip():
            raise _bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise _bad_request("MESSAGE_TOO_LONG")
        # Omitting reply_markup removes the inline keyboard, as on Telegram.
        return self._apply_edit(message, text=text, entities=entities, reply_markup=self._markup(params))

    def _edit_message_caption(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        message = self._editable(params)
        if message.photo is None:
            raise _bad_request("there is no caption in the message to edit")
        caption, entities = render_text(
            str(params.get("caption") or ""), params.get("parse_mode"), params.get("caption_entities")
        )
        return self._apply_edit(
            message, caption=caption or None, caption_entities=entities, reply_markup=self._markup(params)
        )

    def _edit_message_reply_markup(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        message = self._editable(params)
        return self._apply_edit(message, reply_markup=self._markup(params))

    def _delete_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        chat = self._chats.get(params.get("chat_id"))  # type: ignore[arg-type]
        message = chat.messages.get(params.get("message_id")) if chat else None  # type: ignore[arg-type]
        if message is None or message.deleted:
            raise _bad_request("message to delete not found")
        message.deleted = True
        return True

    def _answer_callback_query(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        record = self._queries.get(str(params.get("callback_query_id")))
        if record is None or record.answer is not None:
            raise BotApiError(400, QUERY_INVALID)
        record.answer = CallbackAnswer(
            query_id=record.query_id,
            text=params.get("text"),
            show_alert=bool(params.get("show_alert", False)),
            url=params.get("url"),
            cache_time=params.get("cache_time"),
            answered=time.monotonic(),
        )
        return True

    @staticmethod
    def _scope_key(scope: dict[str, Any] | None, language_code: str | None) -> tuple[str, str]:
        return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code or ""

    def _set_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND.match(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._scope_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _get_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> list[dict[str, str]]:
        key = self._scope_key(params.get("scope"), params.get("language_code"))
        return copy.deepcopy(self._commands.get(key, []))

    def _delete_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        self._commands.pop(self._scope_key(params.get("scope"), params.get("language_code")), None)
        return True
