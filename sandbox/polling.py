"""Long polling as Telegram does it: getUpdates confirms every update below `offset`, waits up to
`timeout` for new ones, and a newer getUpdates ends an older one still waiting (409). Updates not
confirmed stay queued, so a bot that restarts gets them again.

A mixin of `BotApiServer`.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

from sandbox.errors import CONFLICT, BotApiError
from sandbox.records import UploadedFile, _Update


class LongPolling:
    async def _get_updates(
        self, params: dict[str, Any], files: dict[str, UploadedFile]
    ) -> list[dict[str, Any]]:
        """Telegram's getUpdates: confirm below ``offset``, wait up to ``timeout`` for updates."""
        self._refuse_polling_while_webhook()  # 409 while a webhook is set (sandbox/webhook.py)
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
        self.version += 1
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
