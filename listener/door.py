"""What every request to the listener passes before any route runs (an aiohttp middleware).

- **Host**: its name (without the port) must be on the allow-list (`EXPORT_ALLOWED_HOSTS`,
  loopback by default), else 403: a page on a name an attacker rebound to this machine (DNS
  rebinding) sends its own name.
- **Browsers**: a request carrying `Origin` (every cross-origin fetch and every preflight does) is
  refused with 403, and no answer carries CORS headers, so a page on another origin can neither
  read an answer nor send a bearer token through a visitor's browser. Trading bots send no Origin.
- **Errors** are one line of text (`text/plain`); nothing else is said: no stack, no server banner.
  A failure inside a route (Redis unreachable) is logged with its traceback and answered 503.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

logger = logging.getLogger(__name__)

SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def one_line(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers={**SAFE_HEADERS, **headers})


def host_name(host: str) -> str:
    """'127.0.0.1:8090' -> '127.0.0.1', '[::1]:8090' -> '[::1]' (lower case)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def door(allowed_hosts: Iterable[str]) -> Middleware:
    allowed = {name.lower() for name in allowed_hosts}

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        name = host_name(request.headers.get("Host", ""))
        if name not in allowed:
            logger.warning("listener: refused a request for Host %r on %s", name[:64], request.path[:64])
            return one_line(403, "Forbidden: this host name is not served here")
        if "Origin" in request.headers:
            return one_line(403, "Forbidden: requests from web pages are refused")
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 404 / 405: one line too
            return one_line(exc.status, f"{exc.status} {exc.reason}")
        except Exception:  # Redis away, a bug: logged with its traceback; the caller gets one line
            logger.exception("listener: %s %s failed", request.method, request.path[:64])
            return one_line(503, "Service Unavailable: try again later", **{"Retry-After": "30"})
        response.headers.update(SAFE_HEADERS)
        return response

    return check
