"""The Bot API methods the sandbox answers (besides getUpdates, in `polling`).

A mixin of `BotApiServer`. Each method takes (params, files), runs with the server's lock held,
and returns the JSON result or raises `BotApiError` with Telegram's wording.
"""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

from sandbox.errors import MAX_CAPTION, MAX_TEXT, QUERY_INVALID, BotApiError, bad_request
from sandbox.formatting import PNG_SIGNATURE, image_size, render_text, utf16_len
from sandbox.records import CallbackAnswer, Photo, UploadedFile, _StoredFile

_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


class BotApiMethods:
    def _true(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        return True

    def _get_me(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        return dict(self.bot_user)

    def _send_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        chat = self._target_chat(params)
        text, entities = render_text(
            str(params.get("text") or ""), params.get("parse_mode"), params.get("entities")
        )
        if not text.strip():
            raise bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        markup = self._markup(params)
        message = self._add_message(
            chat,
            from_bot=True,
            from_user=self._bot_sender,
            text=text,
            entities=entities,
            reply_markup=markup,
            silent=params.get("disable_notification") is True,
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
                raise bad_request("message caption is too long")
        message = self._add_message(
            chat,
            from_bot=True,
            from_user=self._bot_sender,
            photo=photo,
            caption=caption,
            caption_entities=caption_entities,
            reply_markup=self._markup(params),
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
                raise bad_request("IMAGE_PROCESS_FAILED")
            stored = self._store_file(upload.data, *size, is_png=upload.data.startswith(PNG_SIGNATURE))
        elif isinstance(value, str) and value in self._files:
            stored = self._files[value]
        else:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return Photo(
            stored.file_id,
            stored.file_unique_id,
            len(stored.data),
            stored.width,
            stored.height,
            stored.is_png,
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
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _edit_message_text(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        message = self._editable(params)
        if message.text is None:
            raise bad_request("there is no text in the message to edit")
        text, entities = render_text(
            str(params.get("text") or ""), params.get("parse_mode"), params.get("entities")
        )
        if not text.strip():
            raise bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise bad_request("MESSAGE_TOO_LONG")
        # Omitting reply_markup removes the inline keyboard, as on Telegram.
        return self._apply_edit(message, text=text, entities=entities, reply_markup=self._markup(params))

    def _edit_message_caption(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        message = self._editable(params)
        if message.photo is None:
            raise bad_request("there is no caption in the message to edit")
        caption, entities = render_text(
            str(params.get("caption") or ""), params.get("parse_mode"), params.get("caption_entities")
        )
        return self._apply_edit(
            message, caption=caption or None, caption_entities=entities, reply_markup=self._markup(params)
        )

    def _edit_message_reply_markup(
        self, params: dict[str, Any], files: dict[str, UploadedFile]
    ) -> dict[str, Any]:
        message = self._editable(params)
        return self._apply_edit(message, reply_markup=self._markup(params))

    def _delete_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        chat = self._chats.get(params.get("chat_id"))  # type: ignore[arg-type]
        message = chat.messages.get(params.get("message_id")) if chat else None  # type: ignore[arg-type]
        if message is None or message.deleted:
            raise bad_request("message to delete not found")
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
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND.match(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._scope_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _get_my_commands(
        self, params: dict[str, Any], files: dict[str, UploadedFile]
    ) -> list[dict[str, str]]:
        key = self._scope_key(params.get("scope"), params.get("language_code"))
        return copy.deepcopy(self._commands.get(key, []))

    def _delete_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        self._commands.pop(self._scope_key(params.get("scope"), params.get("language_code")), None)
        return True
