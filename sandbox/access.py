"""Who may talk to the sandbox's listener: checked before any handler runs (aiohttp middlewares),
the way Jupyter guards its local server.

Every request (the Bot API's and the chat page's): the Host header must be the loopback address
and port the server listens on (`127.0.0.1:PORT` or `localhost:PORT`), else 403. A page on a name
that an attacker rebound to 127.0.0.1 (DNS rebinding) sends its own name as Host.

The chat page (`/` and `/api/...`; not its static files, which hold no data):
- the run's secret, in the `X-Sandbox-Secret` header (the page's script sends it) or, on a GET, in
  the `secret` query parameter (the address `make run` prints, and the page's images), else 401;
- on `/api/...` a browser's `Origin` must be the page's own, and a POST must carry one; a
  `Sec-Fetch-Site` other than same-origin is refused too (403): a page on another origin, another
  port of this machine included, can neither act nor read;
- a POST body is JSON declared as `application/json`, else 415: no `text/plain` "simple" POST that
  a page may send anywhere without asking.
Its answers carry a Content-Security-Policy allowing only this server's own script, style and
images (so no inline script runs, even one smuggled into a message), and may be neither framed, nor
read by another origin's `<img>`/`<script>`, nor sent on as a referrer.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

SECRET_HEADER = "X-Sandbox-Secret"
SECRET_PARAM = "secret"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def new_page_secret() -> str:
    """A secret for one run of the chat page (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def is_bot_api(path: str) -> bool:
    """The Bot API's own routes (`/bot<token>/<method>`, `/file/bot<token>/...`)."""
    return path.startswith(("/bot", "/file/bot"))


def refusal(request: web.Request, status: int, message: str) -> web.Response:
    """A one-line refusal: Telegram's shape on the Bot API's routes, the page's elsewhere."""
    if is_bot_api(request.path):
        body = {"ok": False, "error_code": status, "description": message}
        return web.json_response(body, status=status)
    return web.json_response({"error": message}, status=status, headers=PAGE_HEADERS)


def loopback_host_only(port: Callable[[], int | None]) -> Middleware:
    """Refuse (403) a request whose Host is not this server's loopback address and `port()`."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        wanted = {f"{name}:{port()}" for name in LOOPBACK_NAMES}
        if request.headers.get("Host", "").lower() not in wanted:
            return refusal(request, 403, f"Forbidden: this server answers only as 127.0.0.1:{port()}")
        return await handler(request)

    return check_host


def chat_page_guard(secret: str) -> Middleware:
    """The chat page's checks (see the module's docstring); the Bot API's routes pass through."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_bot_api(request.path):
            return await handler(request)
        problem = page_request_problem(request, secret)
        if problem is not None:
            return refusal(request, *problem)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(PAGE_HEADERS)
            raise
        response.headers.update(PAGE_HEADERS)
        return response

    return guard


def page_request_problem(request: web.Request, secret: str) -> tuple[int, str] | None:
    """(status, one line) when the chat page must refuse this request; None when it may go on."""
    api = request.path.startswith("/api/")
    if not (api or request.path == "/"):
        return None  # the page's script and style sheet: public, no data
    given = request.headers.get(SECRET_HEADER)
    if given is None and request.method == "GET":
        given = request.query.get(SECRET_PARAM)
    if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
        return 401, (
            "this sandbox needs its secret: open the address `make run` printed (it ends in ?secret=...)"
        )
    if not api:
        return None
    origin, site = request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site")
    if origin is not None and origin != f"http://{request.host}":
        return 403, "a request from another page is refused"
    if site not in (None, "same-origin", "none"):  # none: typed into the address bar
        return 403, "a request from another site is refused"
    if request.method != "GET":
        if origin is None:
            return 403, "a change needs the Origin header of the chat page"
        if request.content_type != "application/json":
            return 415, "the body must be JSON sent as Content-Type: application/json"
    return None
