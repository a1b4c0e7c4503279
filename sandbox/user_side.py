"""The user's side of the chats: a user writes a message or presses a button, and the bot gets an
update. Used by the chat page and by tests.

A mixin of `BotApiServer`; every public method is synchronous and thread-safe.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from sandbox.errors import MAX_CALLBACK_DATA
from sandbox.formatting import command_entities
from sandbox.records import CallbackQueryRecord, _Update


class UserSide:
    def send_message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        first_name: str = "Tester",
        username: str | None = None,
        sender_chat: dict[str, Any] | None = None,
    ) -> int:
        """Queue an update: ``user_id`` writes ``text`` in ``chat_id`` (their private chat by default).

        A leading ``/command`` gets a bot_command entity, so PTB's CommandHandler matches.
        The message shows up in the chat view. ``sender_chat`` (a Chat object) is what Telegram
        adds when the message is sent on behalf of a chat, e.g. by an anonymous group admin
        (then ``user_id`` is 1087968824). Returns the update_id.
        """
        with self._lock:
            user = self._user(user_id, first_name, username)
            chat = self._chat(user_id if chat_id is None else chat_id, user)
            self.joined_by_writing(chat, user_id)
            message = self._add_message(
                chat, from_bot=False, from_user=user, text=text, entities=command_entities(text)
            )
            payload = self._message_json(message)
            if sender_chat is not None:
                payload["sender_chat"] = dict(sender_chat)
            return self._queue_update("message", payload)

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
            raise ValueError(
                f"callback data is {len(data.encode())} bytes; Telegram allows {MAX_CALLBACK_DATA}"
            )
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
