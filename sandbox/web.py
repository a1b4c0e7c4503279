"""The chat page: plain HTML/CSS/JS from `sandbox/static`, and the small JSON API it speaks.

    GET  /                          the page
    GET  /static/<file>             its script and style sheet
    GET  /api/session               the bot, the people and the chats
    GET  /api/chat?user_id&chat_id&since[&wait]   the chat as that user sees it; waits up to
                                    `wait` s (at most and by default 20) for a change when `since`
                                    is the version the page already has
    POST /api/send   {user_id, chat_id, text}                 the user writes (an update for the bot)
    POST /api/press  {user_id, chat_id, message_id, data}     the user presses an inline button
    GET  /api/answer?query_id       the bot's answer to a press (the toast); waits up to 15 s
    GET  /api/photo/<file_id>       a photo the bot sent

Bad input gets a 400 with a one-line `error`; nothing is queued. The page can only act as the
cast's people, in their private chats and the group. Only the page opened with this run's secret
may call the API, from its own origin (sandbox/access.py says what is refused, and how).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.access import chat_page_guard
from sandbox.cast import Cast
from sandbox.errors import MAX_TEXT
from sandbox.formatting import utf16_len
from sandbox.records import ChatMessage

if TYPE_CHECKING:
    from sandbox.server import BotApiServer

STATIC = Path(__file__).resolve().parent / "static"
CHAT_WAIT_S = 20.0
ANSWER_WAIT_S = 15.0


class PageError(Exception):
    """Bad input from the page: answered 400 with this one-line message."""


class ChatPage:
    def __init__(self, server: BotApiServer, cast: Cast, secret: str):
        self.server, self.cast, self.secret = server, cast, secret
        server.name_group(cast.group_id, cast.group_title)

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(chat_page_guard(self.secret))
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/api/session", self.session)
        app.router.add_get("/api/chat", self.chat)
        app.router.add_post("/api/send", self.send)
        app.router.add_post("/api/press", self.press)
        app.router.add_get("/api/answer", self.answer)
        app.router.add_get("/api/photo/{file_id}", self.photo)

    # ------------------------------------------------------------------ static files
    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in {p.name for p in STATIC.iterdir()}:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------------- API
    async def session(self, request: web.Request) -> web.Response:
        bot = self.server.bot_user
        return web.json_response(
            {
                "sandbox": True,
                "bot": {"id": bot["id"], "first_name": bot["first_name"], "username": bot["username"]},
                "people": [
                    {"key": p.key, "first_name": p.first_name, "role": p.role, "user_id": p.user_id}
                    for p in self.cast.people
                ],
                "group": {"chat_id": self.cast.group_id, "title": self.cast.group_title},
                "limits": {"text": MAX_TEXT},
            }
        )

    async def chat(self, request: web.Request) -> web.Response:
        try:
            user_id, chat_id = self._who(request.query)
            since = int(request.query.get("since", "-1"))
            wait = min(max(float(request.query.get("wait", CHAT_WAIT_S)), 0.0), CHAT_WAIT_S)
        except (PageError, ValueError) as exc:
            return _error(PageError(f"bad query: {exc}") if isinstance(exc, ValueError) else exc)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self.server.version == since and loop.time() < deadline:
            await asyncio.sleep(0.1)
        version = self.server.version
        messages = [self._message(m) for m in self.server.messages(chat_id)]
        return web.json_response(
            {"version": version, "messages": messages, "commands": self._commands(user_id, chat_id)}
        )

    async def send(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user_id, chat_id = self._who(body)
            text = body.get("text")
            if not isinstance(text, str) or not text.strip():
                raise PageError("type a message first")
            if utf16_len(text) > MAX_TEXT:
                raise PageError(f"a message holds at most {MAX_TEXT} characters, as on Telegram")
        except PageError as exc:
            return _error(exc)
        person = self.cast.person(user_id)
        update_id = self.server.send_message(
            user_id, text, chat_id=chat_id, first_name=person.first_name, username=person.username
        )
        return web.json_response({"update_id": update_id})

    async def press(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user_id, chat_id = self._who(body)
            message_id, data = body.get("message_id"), body.get("data")
            if not isinstance(message_id, int) or not isinstance(data, str):
                raise PageError("a press needs message_id (a number) and data (text)")
            person = self.cast.person(user_id)
            query_id = self.server.press_button(
                user_id,
                message_id,
                data,
                chat_id=chat_id,
                first_name=person.first_name,
                username=person.username,
            )
        except PageError as exc:
            return _error(exc)
        except (KeyError, ValueError) as exc:
            return _error(PageError(str(exc).strip("'\"")))
        return web.json_response({"query_id": query_id})

    async def answer(self, request: web.Request) -> web.Response:
        query_id = request.query.get("query_id", "")
        if query_id not in self.server.callback_queries:
            return _error(PageError("unknown query_id"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ANSWER_WAIT_S
        while (found := self.server.callback_answers.get(query_id)) is None and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if found is None:
            return web.json_response({"answered": False})
        return web.json_response({"answered": True, "text": found.text, "show_alert": found.show_alert})

    async def photo(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        try:
            data = self.server.file_bytes(file_id)
        except KeyError:
            raise web.HTTPNotFound() from None
        kind = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        return web.Response(body=data, content_type=kind)

    # ---------------------------------------------------------------------- helpers
    def _who(self, values: Any) -> tuple[int, int]:
        try:
            user_id, chat_id = int(values.get("user_id")), int(values.get("chat_id"))
        except (TypeError, ValueError):
            raise PageError("user_id and chat_id must be numbers") from None
        if not self.cast.may_write(user_id, chat_id):
            raise PageError(f"user {user_id} is not in chat {chat_id} of this sandbox")
        return user_id, chat_id

    def _commands(self, user_id: int, chat_id: int) -> list[dict[str, str]]:
        """The command menu Telegram would show: the narrowest scope the bot set a list for."""
        if chat_id > 0:
            scopes = [{"type": "chat", "chat_id": chat_id}, {"type": "all_private_chats"}, None]
        else:
            scopes = [
                {"type": "chat_member", "chat_id": chat_id, "user_id": user_id},
                {"type": "chat", "chat_id": chat_id},
                {"type": "all_group_chats"},
                None,
            ]
        for scope in scopes:
            commands = self.server.commands(scope=scope)
            if commands:
                return commands
        return []

    def _message(self, message: ChatMessage) -> dict[str, Any]:
        sender = message.from_user
        return {
            "message_id": message.message_id,
            "from_bot": message.from_bot,
            "from": {"id": sender.get("id"), "first_name": sender.get("first_name", "")},
            "text": message.text,
            "entities": message.entities,
            "caption": message.caption,
            "photo": f"/api/photo/{message.photo.file_id}" if message.photo else None,
            "buttons": [
                [{"text": b.text, "data": b.callback_data, "url": b.url} for b in row]
                for row in message.buttons
            ],
            "edits": message.edits,
        }


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise PageError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise PageError("the body must be a JSON object")
    return body


def _error(exc: Exception) -> web.Response:
    return web.json_response({"error": str(exc)}, status=400)
