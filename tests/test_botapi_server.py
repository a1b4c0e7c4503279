"""The real python-telegram-bot stack works against the local Bot API emulator.

Every test talks HTTP to ``BotApiServer``: either through a full PTB ``Application``
(polling in its own thread and loop, as the bot would run) or through a bare PTB
``Bot``, or with raw JSON / form requests for the protocol details PTB hides.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Coroutine
from typing import Any

import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, EndPointNotFound, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from sandbox import NOT_MODIFIED, PNG_SIGNATURE, BotApiServer

TOKEN = "123:TEST"
USER = 4242

# Local HTTP only: never route test traffic through a proxy from the environment.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ----------------------------------------------------------------------- helpers


@pytest.fixture
def api():
    """A running emulator, stopped after the test."""
    with BotApiServer(token=TOKEN) as server:
        yield server


def make_png(width: int = 2, height: int = 3) -> bytes:
    """A valid, tiny RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def seconds(value: int | dtm.timedelta) -> float:
    """RetryAfter.retry_after in seconds, whichever type PTB is configured to return."""
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def bot_for(api: BotApiServer, token: str = TOKEN) -> Bot:
    """A bare PTB Bot pointed at the emulator."""
    return Bot(token, base_url=api.base_url, base_file_url=api.base_file_url)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on a fresh loop in this thread (the emulator has its own)."""
    return asyncio.run(coro)


def post(url: str, params: dict[str, Any], *, form: bool = False, timeout: float = 15) -> tuple[int, dict]:
    """POST params as JSON (or urlencoded form, values JSON-encoded like PTB); (status, body)."""
    if form:
        fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        data, content_type = urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"
    else:
        data, content_type = json.dumps(params).encode(), "application/json"
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with _HTTP.open(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def build_app(api: BotApiServer, errors: list[BaseException] | None = None) -> Application:
    """The demo bot: /start shows a card with buttons; a press answers and edits the card."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Pause", callback_data="p:1"),
                    InlineKeyboardButton("Cancel", callback_data="c:1"),
                ]
            ]
        )
        await update.effective_message.reply_text("Analysis ready", reply_markup=keyboard)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer(f"got {query.data}")
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Refresh", callback_data="r:1")]])
        await query.edit_message_text(f"Pressed {query.data}", reply_markup=keyboard)

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if errors is not None:
            errors.append(context.error)

    application = (
        ApplicationBuilder().token(api.token).base_url(api.base_url).base_file_url(api.base_file_url).build()
    )
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CallbackQueryHandler(pressed))
    application.add_error_handler(on_error)
    return application


class RunningApplication:
    """Runs a PTB Application (initialize, start, polling) on its own loop in a thread.

    Leaving the ``with`` block stops polling and shuts the application down cleanly.
    """

    def __init__(self, application: Application):
        self.application = application
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ptb-application", daemon=True)

    def __enter__(self) -> RunningApplication:
        self._thread.start()
        assert self._ready.wait(10), "PTB application did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "PTB application did not shut down"
        if self._error is not None and exc_info[0] is None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced in __enter__ / __exit__
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = self.application
        await app.initialize()
        try:
            await app.start()
            await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=5))
            self._ready.set()
            await self._stop.wait()
        finally:
            if app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()


# ------------------------------------------------------------ the Application flow


def test_start_command_and_button_press_round_trip(api: BotApiServer) -> None:
    errors: list[BaseException] = []
    with RunningApplication(build_app(api, errors)):
        api.send_message(USER, "/start")
        assert api.wait_for_call("sendMessage").ok
        card = api.last_message(USER)
        assert card.text == "Analysis ready"
        assert card.button_labels == ["Pause", "Cancel"]

        mark = api.mark()
        query_id = api.press(USER, card.message_id, "Pause")
        assert api.wait_for_callback_answer(query_id).text == "got p:1"
        assert api.wait_for_call("editMessageText", since=mark).ok

        edited = api.message(USER, card.message_id)
        assert edited.text == "Pressed p:1"
        assert edited.button_labels == ["Refresh"]
        assert edited.history == ["Analysis ready"]
        assert edited.edits == 1

    assert errors == []
    # PTB's start-up and shutdown calls, and the final getUpdates confirming every update.
    assert [c.method for c in api.calls[:2]] == ["getMe", "deleteWebhook"]
    assert api.pending_updates == []
    assert all(c.answered is not None for c in api.calls_of("sendMessage"))


def test_forged_callback_data_reaches_the_bot_verbatim(api: BotApiServer) -> None:
    with RunningApplication(build_app(api)):
        api.send_message(USER, "/start")
        api.wait_for_call("sendMessage")
        card = api.last_message(USER)
        forged = "p:999;\x00💥" + "x" * 40  # 54 bytes, matches no button
        query_id = api.press_button(USER, card.message_id, forged)
        assert api.wait_for_callback_answer(query_id).text == f"got {forged}"
        api.wait_for(lambda: api.message(USER, card.message_id).text == f"Pressed {forged}")

    with pytest.raises(ValueError):
        api.press_button(USER, card.message_id, "x" * 65)
    with pytest.raises(KeyError):
        api.press_button(USER, 9999, "p:1")


def test_updates_queued_while_the_bot_is_down_arrive_after_restart(api: BotApiServer) -> None:
    with RunningApplication(build_app(api)):
        api.send_message(USER, "/start")
        api.wait_for_call("sendMessage")

    api.send_message(USER, "/start")  # nobody is polling now
    mark = api.mark()
    with RunningApplication(build_app(api)):
        api.wait_for_call("sendMessage", since=mark)
    assert [m.text for m in api.messages(USER, from_bot=True)] == ["Analysis ready"] * 2


# ------------------------------------------------------------- errors through PTB


# PTB 22 warns that RetryAfter.retry_after will become a timedelta; both are accepted here.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_rate_limited_edit_raises_retry_after(api: BotApiServer) -> None:
    async def scenario() -> int:
        async with bot_for(api) as bot:
            card = await bot.send_message(USER, "card")
            api.rate_limit("editMessageText", times=1, retry_after=3)
            with pytest.raises(RetryAfter) as err:
                await bot.edit_message_text("new", chat_id=USER, message_id=card.message_id)
            assert seconds(err.value.retry_after) == 3
            await bot.edit_message_text("new", chat_id=USER, message_id=card.message_id)  # fault used up
            return card.message_id

    message_id = run(scenario())
    limited, accepted = api.calls_of("editMessageText")
    assert limited.status == 429
    assert limited.response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    assert accepted.ok and api.message(USER, message_id).text == "new"


def test_identical_edit_is_not_modified_and_unknown_message_is_not_found(api: BotApiServer) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Refresh", callback_data="r:1")]])

    async def scenario() -> None:
        async with bot_for(api) as bot:
            card = await bot.send_message(USER, "card", reply_markup=keyboard)
            with pytest.raises(BadRequest, match="(?i)message is not modified"):
                await bot.edit_message_text(
                    "card", chat_id=USER, message_id=card.message_id, reply_markup=keyboard
                )
            with pytest.raises(BadRequest, match="(?i)message is not modified"):
                await bot.edit_message_reply_markup(
                    chat_id=USER, message_id=card.message_id, reply_markup=keyboard
                )
            # Dropping the keyboard is a change, as on Telegram.
            await bot.edit_message_text("card", chat_id=USER, message_id=card.message_id)
            with pytest.raises(BadRequest, match="(?i)message to edit not found"):
                await bot.edit_message_text("x", chat_id=USER, message_id=card.message_id + 100)

    run(scenario())
    assert api.calls_of("editMessageText")[0].description == NOT_MODIFIED
    assert api.last_message(USER).reply_markup is None


def test_unknown_method_and_wrong_token(api: BotApiServer) -> None:
    async def scenario() -> None:
        async with bot_for(api) as bot:
            with pytest.raises(EndPointNotFound):
                await bot.do_api_request("fooBar", api_kwargs={"x": 1})
        with pytest.raises(InvalidToken):
            async with bot_for(api, token="999:WRONG"):  # initialize() calls getMe
                pass

    run(scenario())
    # Form values of unknown methods stay strings: the emulator knows no schema for them.
    assert [(c.method, c.params, c.status) for c in api.unknown_calls] == [("fooBar", {"x": "1"}, 404)]
    assert api.calls_of("fooBar")[0].description == "Not Found: method not found"
    assert api.calls_of("getMe")[-1].status == 401


def test_html_parse_mode_is_stored_as_the_user_sees_it(api: BotApiServer) -> None:
    async def scenario() -> Any:
        async with bot_for(api) as bot:
            with pytest.raises(BadRequest, match="(?i)can't parse entities"):
                await bot.send_message(USER, "<b>unclosed", parse_mode="HTML")
            text = '💥 <b>BTC</b> &lt;1h&gt; <a href="https://x.test">chart</a>'
            return await bot.send_message(USER, text, parse_mode="HTML")

    sent = run(scenario())
    assert sent.text == "💥 BTC <1h> chart"
    assert sent.parse_entities() == {sent.entities[0]: "BTC", sent.entities[1]: "chart"}  # UTF-16 offsets
    assert api.last_message(USER).text == "💥 BTC <1h> chart"


# ---------------------------------------------------------- uploads and commands


def test_send_photo_upload_is_stored_and_downloadable(api: BotApiServer) -> None:
    png = make_png(2, 3)

    async def scenario() -> tuple[Any, bytes]:
        async with bot_for(api) as bot:
            sent = await bot.send_photo(USER, photo=png, caption="<b>Chart</b>", parse_mode="HTML")
            with pytest.raises(BadRequest, match="(?i)IMAGE_PROCESS_FAILED"):
                await bot.send_photo(USER, photo=b"not an image")
            file = await bot.get_file(sent.photo[-1].file_id)
            return sent, bytes(await file.download_as_bytearray())

    sent, downloaded = run(scenario())
    assert (sent.photo[-1].width, sent.photo[-1].height) == (2, 3)
    assert sent.caption == "Chart" and sent.caption_entities[0].type == "bold"
    photo = api.last_message(USER).photo
    assert photo is not None and photo.is_png and photo.size == len(png)
    assert api.calls_of("sendPhoto")[0].files["photo"].size == len(png)
    assert downloaded == png == api.file_bytes(photo.file_id)


def test_set_and_get_my_commands(api: BotApiServer) -> None:
    commands = [BotCommand("start", "Start"), BotCommand("rank", "Rank markets")]

    async def scenario() -> tuple[BotCommand, ...]:
        async with bot_for(api) as bot:
            assert await bot.set_my_commands(commands)
            with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
                await bot.set_my_commands([BotCommand("Bad-Command", "x")])
            return await bot.get_my_commands()

    assert run(scenario()) == tuple(commands)
    assert api.commands() == [
        {"command": "start", "description": "Start"},
        {"command": "rank", "description": "Rank markets"},
    ]


# ------------------------------------------------------------ protocol details


def test_get_updates_offset_limit_and_allowed_updates(api: BotApiServer) -> None:
    url = f"{api.base_url}{TOKEN}/getUpdates"
    first, second, third = (api.send_message(USER, f"m{i}") for i in range(3))

    status, body = post(url, {"limit": 2})
    assert status == 200 and [u["update_id"] for u in body["result"]] == [first, second]
    assert body["result"][0]["message"]["text"] == "m0"

    # Updates stay until a higher offset confirms them.
    _, body = post(url, {"offset": second + 1, "timeout": 0}, form=True)
    assert [u["update_id"] for u in body["result"]] == [third]
    assert api.pending_updates == [third]

    _, body = post(url, {"offset": third, "allowed_updates": ["callback_query"]})
    assert body["result"] == []
    assert api.calls_of("getUpdates")[-1].params["allowed_updates"] == ["callback_query"]


def test_form_and_json_bodies_are_recorded_alike(api: BotApiServer) -> None:
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "g"}]]}
    url = f"{api.base_url}{TOKEN}/sendMessage"
    assert post(url, {"chat_id": USER, "text": "123", "reply_markup": markup}, form=True)[0] == 200
    assert post(url, {"chat_id": str(USER), "text": "123", "reply_markup": markup})[0] == 200
    form_call, json_call = api.calls_of("sendMessage")
    assert form_call.params == json_call.params == {"chat_id": USER, "text": "123", "reply_markup": markup}

    too_long = {"inline_keyboard": [[{"text": "A", "callback_data": "x" * 65}]]}
    status, body = post(url, {"chat_id": USER, "text": "x", "reply_markup": too_long})
    assert (status, body["description"]) == (400, "Bad Request: BUTTON_DATA_INVALID")


def test_long_poll_returns_as_soon_as_an_update_is_queued(api: BotApiServer) -> None:
    url = f"{api.base_url}{TOKEN}/getUpdates"
    result: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        result["body"] = post(url, {"timeout": 10})[1]
        result["elapsed"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    api.wait_for(lambda: any(c.method == "getUpdates" and c.answered is None for c in api.calls))
    update_id = api.send_message(USER, "hello")
    poller.join(5)
    assert not poller.is_alive()
    assert [u["update_id"] for u in result["body"]["result"]] == [update_id]
    assert result["elapsed"] < 2

    started = time.monotonic()
    assert post(url, {"offset": update_id + 1, "timeout": 0.3})[1]["result"] == []
    assert time.monotonic() - started >= 0.25  # the empty poll waited for its timeout


def test_newer_get_updates_ends_an_older_one_with_conflict(api: BotApiServer) -> None:
    url = f"{api.base_url}{TOKEN}/getUpdates"
    outcome: dict[str, Any] = {}
    poller = threading.Thread(target=lambda: outcome.update(first=post(url, {"timeout": 10})))
    poller.start()
    api.wait_for(lambda: any(c.method == "getUpdates" and c.answered is None for c in api.calls))
    assert post(url, {"timeout": 0}) == (200, {"ok": True, "result": []})
    poller.join(5)
    status, body = outcome["first"]
    assert status == 409 and body["description"].startswith("Conflict: terminated by other getUpdates")


def test_injected_failure_is_answered_then_cleared(api: BotApiServer) -> None:
    url = f"{api.base_url}{TOKEN}/sendMessage"
    api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", times=2)
    for _ in range(2):
        assert post(url, {"chat_id": USER, "text": "hi"}) == (
            403,
            {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
        )
    assert post(url, {"chat_id": USER, "text": "hi"})[0] == 200
    assert [m.text for m in api.messages(USER)] == ["hi"]

    api.delay("sendMessage", 0.2)
    assert post(url, {"chat_id": USER, "text": "late"})[0] == 200
    assert api.calls_of("sendMessage")[-1].duration >= 0.2


def test_group_membership_is_state_the_bot_reads_with_get_chat_member(api: BotApiServer) -> None:
    """#19 item 3: getChatMember / getChatAdministrators over PTB, as a test changes who is in the
    group; a deleted group is "chat not found" for every method."""
    group, owner, admin = -100, 501, 502
    api.send_message(owner, "hello", chat_id=group)  # writing in a group: a member
    api.set_member(group, admin, "administrator", first_name="Ada")
    bot = bot_for(api)

    async def read(user_id: int) -> str:
        async with bot:
            return (await bot.get_chat_member(group, user_id)).status

    async def admins() -> list[int]:
        async with bot:
            return [m.user.id for m in await bot.get_chat_administrators(group)]

    assert (run(read(owner)), run(read(admin)), run(read(999))) == ("member", "administrator", "left")
    assert run(admins()) == [admin]
    api.leave_group(group, owner)
    assert run(read(owner)) == "left"
    api.delete_group(group)
    for call in (read(owner), admins()):
        with pytest.raises(BadRequest, match="Chat not found"):
            run(call)

    async def send() -> None:
        async with bot:
            await bot.send_message(group, "still there?")

    with pytest.raises(BadRequest, match="Chat not found"):
        run(send())
