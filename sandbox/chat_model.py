"""The chats the sandbox keeps: users, chats, messages and their edits, as Telegram stores them.

A mixin of `BotApiServer`; every method runs with the server's lock held.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from sandbox.errors import EDIT_NOT_FOUND, MAX_CALLBACK_DATA, NOT_MODIFIED, BotApiError, bad_request
from sandbox.formatting import checked_link
from sandbox.records import ChatMessage, _Chat


class ChatModel:
    def name_group(self, chat_id: int, title: str) -> None:
        """Create (or rename) the group chat `chat_id`, as a user adding the bot to it would."""
        with self._lock:
            self._chat(chat_id).info["title"] = title

    def _user(self, user_id: int, first_name: str, username: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": "en",
        }
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
                info = {
                    "id": chat_id,
                    "type": "private",
                    "first_name": owner.get("first_name", f"User{chat_id}"),
                }
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

    def _add_message(
        self, chat: _Chat, *, from_bot: bool, from_user: dict[str, Any], **content: Any
    ) -> ChatMessage:
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
                {
                    "file_id": p.file_id,
                    "file_unique_id": p.file_unique_id,
                    "width": p.width,
                    "height": p.height,
                    "file_size": p.size,
                }
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
            raise bad_request("chat_id is empty")
        if not isinstance(chat_id, int) or (chat_id in self._chats and self._chats[chat_id].deleted):
            raise bad_request("chat not found")
        return self._chat(chat_id)

    def _editable(self, params: dict[str, Any]) -> ChatMessage:
        if "inline_message_id" in params:
            raise bad_request("inline messages are not emulated")
        chat = self._chats.get(params.get("chat_id"))  # type: ignore[arg-type]
        message = chat.messages.get(params.get("message_id")) if chat else None  # type: ignore[arg-type]
        if message is None or message.deleted:
            raise bad_request(EDIT_NOT_FOUND.removeprefix("Bad Request: "))
        if not message.from_bot:
            raise bad_request("message can't be edited")
        return message

    @staticmethod
    def _markup(params: dict[str, Any]) -> dict[str, Any] | None:
        """Validated reply_markup; an empty inline keyboard counts as none."""
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        for button in (b for row in rows for b in row):
            if not isinstance(button, dict) or not button.get("text"):
                raise bad_request("BUTTON_TEXT_INVALID")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                raise bad_request("BUTTON_DATA_INVALID")
            if len(button) == 1:
                raise bad_request("text buttons are unallowed in the inline keyboard")
            if "url" in button and checked_link(button["url"]) is None:  # http, https, tg only
                raise bad_request("BUTTON_URL_INVALID")
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
