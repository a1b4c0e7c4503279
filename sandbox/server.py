"""The sandbox's Telegram Bot API server: real HTTP, faithful where a bot could tell.

``BotApiServer`` speaks enough of the Bot API for the unmodified python-telegram-bot
``Application`` to run against it: long polling with offsets (unconfirmed updates are delivered
again to a restarted bot), messages with inline keyboards, callback queries, edits, photo uploads
and bot commands. It refuses what Telegram refuses: text over 4,096 characters, callback data over
64 bytes, an edit that changes nothing ("message is not modified"), and, with a ``FloodLimit``, a
chat written to faster than about once a second (429 with ``retry_after``). It also plays the
user's side (``send_message``, ``press_button``) and keeps what a user would see in each chat, so
tests assert on the chat and the chat page (``sandbox.web``) shows it.

The server runs an aiohttp application inside a background thread with its own asyncio loop, so
the bot can live in the same process (on any loop or thread) or in a subprocess that is restarted.
Every public method is synchronous and thread-safe. The parts are mixins, one idea each:
``chat_model`` (chats and messages), ``methods`` (the Bot API methods), ``polling``
(getUpdates), ``webhook`` (setWebhook and delivery to it), ``user_side`` (users write and press),
``observe`` (records, waiting, faults).

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

Fidelity notes (what is deliberately *not* emulated): ``parse_mode="HTML"`` is parsed into plain
text plus entities, but Markdown / MarkdownV2 text is stored verbatim with no entities;
inline-mode messages (``inline_message_id``), webhooks, media groups and URL uploads are not
emulated. Flood control is one rule per chat (about one write a second, a burst of three); neither
Telegram's 20 messages a minute in groups nor its global 30 a second is emulated. Tests can also
inject 429s with :meth:`BotApiServer.rate_limit`. Error descriptions copy the real server's wording where
it is known. Unlike Telegram, it answers only requests whose Host is its own loopback address (a local
server must not be reachable through DNS rebinding, sandbox/access.py); like Telegram, it accepts links
(text_link entities, url buttons) only to http, https and tg, refusing others with a 400 (the wording
for entities is the sandbox's own; BUTTON_URL_INVALID is Telegram's).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from sandbox.access import loopback_host_only
from sandbox.chat_model import ChatModel
from sandbox.errors import FLOODED, BotApiError
from sandbox.flood import FloodControl, FloodLimit
from sandbox.membership import Membership
from sandbox.methods import BotApiMethods
from sandbox.observe import Observer
from sandbox.params import read_params
from sandbox.polling import LongPolling
from sandbox.records import Call, CallbackQueryRecord, UploadedFile, _Chat, _Fault, _StoredFile, _Update
from sandbox.user_side import UserSide
from sandbox.webhook import WebhookDelivery


class Page(Protocol):
    """Something else the server serves on its port (the chat page, sandbox/web.py)."""

    def add_routes(self, app: web.Application) -> None: ...


# Methods that write into a chat, and so count against its flood limit.
_WRITES = frozenset(
    {"sendmessage", "sendphoto", "editmessagetext", "editmessagecaption", "editmessagereplymarkup"}
)


class BotApiServer(ChatModel, BotApiMethods, LongPolling, UserSide, Observer, Membership, WebhookDelivery):
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
        flood: FloodLimit | None = None,
        pages: Callable[[BotApiServer], Page] | None = None,
        first_update_id: int = 100_000,
    ):
        """Configure the server; nothing listens until :meth:`start`.

        ``token`` is the only token accepted (others get 401). Its numeric prefix is the
        bot's user id. ``port=0`` picks a free port. ``flood`` turns on Telegram's per-chat flood
        control (off by default, so a test's timing is its own). ``pages`` makes, for this
        server, what else it serves (the chat page at ``/``: sandbox/launch.py passes it, so this
        module never imports the page). Update ids count up from ``first_update_id``.
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
        self._update_ids = itertools.count(first_update_id)
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
        self._flood = FloodControl(flood) if flood else None
        self.version = 0  # bumped whenever what a user sees may have changed (the chat page waits on it)
        self._pages = pages

        # Owned by the server thread / loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._pollers: set[asyncio.Future[str]] = set()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._init_webhook()

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
                "setWebhook": self._set_webhook,
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
                "getChatMember": self._get_chat_member,
                "getChatAdministrators": self._get_chat_administrators,
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
        # Only this machine's loopback name may be the Host (DNS rebinding: sandbox/access.py).
        app = web.Application(
            client_max_size=64 * 1024 * 1024, middlewares=[loopback_host_only(lambda: self.port)]
        )
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        if self._pages is not None:
            self._pages(self).add_routes(app)
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

    # ------------------------------------------------------------- HTTP handling

    async def _handle_method(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        canonical, handler = self._methods.get(name.lower(), (name, None))
        call = Call(-1, canonical, {}, {}, time.monotonic())
        try:
            call.params, call.files = await read_params(request)
        except BotApiError as exc:
            self._record(call)
            return self._answer(call, self._error_body(exc))
        self._record(call)
        if request.match_info["token"] != self.token:
            return self._answer(call, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if handler is None:
            return self._answer(
                call, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
            )
        try:
            fault = self._take_fault(canonical, call.params.get("chat_id"))
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                raise BotApiError(fault.status, fault.description, fault.parameters)
            self._check_flood(canonical, call.params)
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
            self.version += 1
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

    def _check_flood(self, method: str, params: dict[str, Any]) -> None:
        """Telegram's 429 for a chat written to too fast (only with a FloodLimit)."""
        chat_id = params.get("chat_id")
        if self._flood is None or method.lower() not in _WRITES or not isinstance(chat_id, int):
            return
        with self._lock:
            wait = self._flood.take(chat_id, time.monotonic())
        if wait:
            raise BotApiError(429, FLOODED.format(retry_after=wait), {"retry_after": wait})

    def _take_fault(self, method: str, chat_id: object) -> _Fault | None:
        """The first fault armed for this method and chat (or for any chat), used up."""
        with self._lock:
            queue = self._faults.get(method.lower()) or []
            for fault in queue:
                if fault.chat_id is None or fault.chat_id == chat_id:
                    queue.remove(fault)
                    return fault
            return None

    def _summary(self) -> str:
        with self._lock:
            counts = collections.Counter(c.method for c in self._calls)
            tail = [f"{c.method}->{c.status}" for c in self._calls[-6:]]
        return f"calls so far {dict(counts)}; last {tail}"
