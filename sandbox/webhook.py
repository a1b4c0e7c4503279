"""Telegram's webhook, as the sandbox's Bot API server plays it: setWebhook / deleteWebhook /
getWebhookInfo, and while a webhook is set every queued update is POSTed to it as JSON with the
`X-Telegram-Bot-Api-Secret-Token` header, up to `max_connections` at a time. An update counts as
delivered on a 2xx answer; any other answer, or no answer within `WEBHOOK_TIMEOUT_S`, is retried
later (backoff from `webhook_retry_s`, doubling up to 8 x), and the last error is shown by
getWebhookInfo. getUpdates is refused (409) while a webhook is set, as on Telegram.

Unlike Telegram, an http:// URL is accepted (the tests' bot listens on loopback without TLS).
A mixin of `BotApiServer`; the delivery runs on the server's loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from typing import Any

import aiohttp

from sandbox.errors import BotApiError, bad_request
from sandbox.records import UploadedFile, _Update

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_TIMEOUT_S = 10.0
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@dataclasses.dataclass
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


class WebhookDelivery:
    webhook_retry_s = 0.2  # first retry after a failed delivery (Telegram waits longer)

    def _init_webhook(self) -> None:
        self._webhook: Webhook | None = None
        self._webhook_task: asyncio.Task | None = None
        self.webhook_posts: list[tuple[int, int | None]] = []  # (update_id, HTTP status or None)

    @property
    def webhook_url(self) -> str:
        """The webhook's URL, "" when the bot polls."""
        with self._lock:
            return self._webhook.url if self._webhook else ""

    # --- the Bot API methods (run with the server's lock held, on its loop) ----------------
    def _set_webhook(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return self._delete_webhook(params, files)
        if not re.match(r"^https?://[^/\s]+", url):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.match(str(secret)):
            raise bad_request("secret token contains unallowed characters")
        try:
            connections = int(params.get("max_connections") or 40)
        except (TypeError, ValueError):
            raise bad_request("bad webhook: max_connections must be a number") from None
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"]) or None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = Webhook(url, None if secret is None else str(secret), min(max(connections, 1), 100))
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_forever())
        self._wake_pollers("stopping")  # a long poll in flight ends; later ones get 409
        return True

    def _delete_webhook(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = None
        self._wake_pollers("update")  # the deliverer sees it and ends
        return True

    def _get_webhook_info(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        hook = self._webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if self._allowed_updates is not None:
                info["allowed_updates"] = list(self._allowed_updates)
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    def _refuse_polling_while_webhook(self) -> None:
        with self._lock:
            if self._webhook is not None:
                raise BotApiError(409, WEBHOOK_CONFLICT)

    # --- delivery ----------------------------------------------------------------------------
    async def _deliver_forever(self) -> None:
        in_flight: dict[int, asyncio.Task] = {}
        retry_at: dict[int, tuple[float, float]] = {}  # update id -> (when, next backoff)
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)) as session:
            try:
                while True:
                    with self._changed:
                        hook = self._webhook
                        if hook is None:
                            return
                        if self._allowed_updates is not None:
                            self._updates = [u for u in self._updates if u.kind in self._allowed_updates]
                        now = loop.time()
                        room = hook.max_connections - len(in_flight)
                        due = [
                            u
                            for u in self._updates
                            if u.update_id not in in_flight
                            and retry_at.get(u.update_id, (0.0, 0.0))[0] <= now
                        ][: max(room, 0)]
                        for update in due:
                            update.delivered = update.delivered or time.monotonic()
                    for update in due:
                        in_flight[update.update_id] = asyncio.create_task(self._post(session, hook, update))
                    waiter: asyncio.Future[str] = loop.create_future()
                    self._pollers.add(waiter)
                    try:
                        await asyncio.wait(
                            {waiter, *in_flight.values()},
                            timeout=self.webhook_retry_s,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                    finally:
                        self._pollers.discard(waiter)
                    if waiter.done() and waiter.result() == "stopping" and self._webhook is None:
                        return
                    for update_id, task in list(in_flight.items()):
                        if task.done():
                            del in_flight[update_id]
                            self._settle(update_id, task.result(), retry_at, loop.time())
            finally:
                for task in in_flight.values():
                    task.cancel()

    async def _post(self, session: aiohttp.ClientSession, hook: Webhook, update: _Update) -> str | None:
        """POST one update; None when the bot took it (2xx), else what went wrong."""
        body = json.dumps({"update_id": update.update_id, update.kind: update.payload}, ensure_ascii=False)
        headers = {"Content-Type": "application/json"}
        if hook.secret_token is not None:
            headers[SECRET_HEADER] = hook.secret_token
        status: int | None = None
        try:
            async with session.post(hook.url, data=body.encode(), headers=headers) as response:
                status = response.status
                await response.read()
                error = (
                    None
                    if 200 <= status < 300
                    else f"Wrong response from the webhook: {status} {response.reason}"
                )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"Connection failed: {type(exc).__name__}"
        with self._changed:
            self.webhook_posts.append((update.update_id, status))
            self._changed.notify_all()
        return error

    def _settle(
        self, update_id: int, error: str | None, retry_at: dict[int, tuple[float, float]], now: float
    ) -> None:
        with self._changed:
            if error is None:
                retry_at.pop(update_id, None)
                self._updates = [u for u in self._updates if u.update_id != update_id]
            else:
                backoff = retry_at.get(update_id, (0.0, self.webhook_retry_s))[1]
                retry_at[update_id] = (now + backoff, min(backoff * 2, self.webhook_retry_s * 8))
                if self._webhook is not None:
                    self._webhook.last_error_date = int(time.time())
                    self._webhook.last_error_message = error
            self.version += 1
            self._changed.notify_all()
