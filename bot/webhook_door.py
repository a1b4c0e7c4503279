"""The door of the bot's webhook listener: what a request must be before its update is handled.

Checked in this order; a failed check is answered with one line of text, logged in one line
(never a secret), and nothing is handled:

- **Host** is the host[:port] of TELEGRAM_WEBHOOK_URL (what the load balancer forwards), or one of
  TELEGRAM_WEBHOOK_HOSTS (for a balancer that rewrites Host), else 403: a page on a name an
  attacker rebound to this machine (DNS rebinding) sends its own name.
- no **Origin**, else 403: Telegram sends none; every cross-origin fetch and preflight of a browser
  does. No answer carries CORS headers.
- the route: the URL's path only (404 elsewhere), POST only (405).
- the **secret** header `X-Telegram-Bot-Api-Secret-Token`, compared in constant time, else 403;
  checked before the body is read.
- `Content-Type: application/json` (415), a body of at most `MAX_BODY_BYTES` (413), a JSON object
  that is a Telegram Update with an integer `update_id` (400).

A valid update is handled before it is answered: 200 once PTB's handlers are done with it
(through the Application's update processor, which keeps the update ledger), so an update an
instance received but had not taken when it died was never confirmed, and Telegram delivers it
again to another instance. 503 while the bot is not running or when the ledger's Redis cannot be
reached: nothing was handled, and Telegram retries.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from redis.exceptions import RedisError
from telegram import Update
from telegram.ext import Application

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's updates are a few kB (a message is at most 4096 characters); 1 MiB is generous.
MAX_BODY_BYTES = 1 << 20
DEFAULT_PORTS = {"http": 80, "https": 443}
ANSWER_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def one_line(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=ANSWER_HEADERS)


def webhook_hosts(url: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host headers the listener answers: the URL's host[:port] (a default port written or
    not) and `extra` as written, all lower case."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1].lower()
    default = DEFAULT_PORTS[parts.scheme.lower()]
    if parts.port is None:
        hosts = {netloc, f"{netloc}:{default}"}
    elif parts.port == default:
        hosts = {netloc, netloc.rsplit(":", 1)[0]}
    else:
        hosts = {netloc}
    return frozenset(hosts | {host.strip().lower() for host in extra if host.strip()})


def refused(request: web.Request, status: int, why: str, logged: str = "") -> web.Response:
    """Log the refusal in one line (what was wrong and `logged`, never a secret) and answer it."""
    logger.warning(
        "webhook: refused %s %r from %s: %s%s (%d)",
        request.method,
        request.path[:64],
        request.remote,
        why,
        logged,
        status,
    )
    return one_line(status, f"{status} {why}")


def door(hosts: frozenset[str]) -> Middleware:
    """Host and Origin, before any route; aiohttp's own 404 / 405 become one line too."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Host", "").strip().lower() not in hosts:
            return refused(
                request,
                403,
                "Forbidden: this host name is not served here",
                logged=f" (Host {request.headers.get('Host', '')[:64]!r})",
            )
        if "Origin" in request.headers:
            return refused(request, 403, "Forbidden: requests from web pages are refused")
        try:
            return await handler(request)
        except web.HTTPException as exc:  # no such route, another method, a body over the cap
            return refused(request, exc.status, exc.reason)

    return check


def read_update(body: bytes, application: Application) -> Update | str:
    """The Update in `body`, or why it is not one (for a 400)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested past the parser's depth
        return "Bad Request: the body is not JSON"
    if not isinstance(data, dict) or type(data.get("update_id")) is not int:
        return "Bad Request: the body is not a Telegram Update (a JSON object with an integer update_id)"
    try:
        return Update.de_json(data, application.bot)
    # What PTB's parser raises on a malformed part (a missing field, a wrong type, a date past the
    # calendar's end): the sender's fault.
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        return f"Bad Request: the body is not a Telegram Update ({type(exc).__name__})"


class WebhookRoute:
    """POST on the webhook's path: the secret, the body, then the update handled."""

    def __init__(self, application: Application, secret: str):
        self.application = application
        self.secret = secret.encode()

    async def post(self, request: web.Request) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.secret):
            return refused(request, 403, "Forbidden: no or a wrong secret token")
        if request.content_type != "application/json":
            return refused(request, 415, "Unsupported Media Type: send application/json")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return refused(request, 413, f"Payload Too Large: at most {MAX_BODY_BYTES} bytes")
        body = await request.read()  # a chunked body over the cap raises 413 (client_max_size)
        update = read_update(body, self.application)
        if isinstance(update, str):
            return refused(request, 400, update)
        if not self.application.running:
            return refused(request, 503, "Service Unavailable: the bot is starting or stopping")
        try:
            await self.application.update_processor.process_update(
                update, self.application.process_update(update)
            )
        except (RedisError, OSError) as exc:
            why = "Service Unavailable: the update ledger cannot be reached"
            return refused(request, 503, why, f" ({type(exc).__name__})")
        return web.Response(status=200)


def webhook_app(
    application: Application, secret: str, url: str, extra_hosts: Iterable[str]
) -> web.Application:
    """The listener's aiohttp app: one POST route at the URL's path, behind the door."""
    app = web.Application(middlewares=[door(webhook_hosts(url, extra_hosts))], client_max_size=MAX_BODY_BYTES)
    app.router.add_post(urlsplit(url).path or "/", WebhookRoute(application, secret).post)
    return app
