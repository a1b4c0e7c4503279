"""What a test (or the chat page) can read from the sandbox: the call record, the chats as a user
sees them, waiting for a condition, and injected faults.

A mixin of `BotApiServer`; every public method is synchronous and thread-safe.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from sandbox.records import Button, Call, CallbackAnswer, CallbackQueryRecord, ChatMessage, _Fault


class Observer:
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

    def commands(
        self, *, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        """The command list set with setMyCommands for a scope and language."""
        with self._lock:
            return copy.deepcopy(self._commands.get(self._scope_key(scope, language_code), []))

    # ------------------------------------------------------------ fault injection

    def rate_limit(
        self, method: str, times: int = 1, retry_after: int = 1, chat_id: int | None = None
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (to ``chat_id`` only, if given) with 429 and
        ``retry_after`` seconds."""
        fault = _Fault(
            429,
            f"Too Many Requests: retry after {retry_after}",
            {"retry_after": retry_after},
            chat_id=chat_id,
        )
        self._add_fault(method, fault, times)

    def fail(
        self, method: str, status: int = 400, description: str = "Bad Request: injected", times: int = 1
    ) -> None:
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
