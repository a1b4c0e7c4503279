"""GET /metrics: the Prometheus exposition (tasks/metrics.py) for `Authorization: Bearer
<METRICS_TOKEN>`. Without a configured token nothing is served (401 to everyone): metrics say how
busy the deployment is and who spends what, which is not for any local page or user."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable

from aiohttp import web

from listener.app import Feature
from listener.door import one_line
from listener.export_routes import bearer

UNAUTHORIZED = "Unauthorized: send METRICS_TOKEN as Authorization: Bearer <token>"


def metrics_feature(exposition: Callable[[], bytes], token: str, port: int | None) -> Feature:
    async def metrics(request: web.Request) -> web.StreamResponse:
        given = bearer(request)
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return one_line(401, UNAUTHORIZED, **{"WWW-Authenticate": 'Bearer realm="marketrank"'})
        body = await asyncio.to_thread(exposition)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    def register(app: web.Application) -> None:
        app.router.add_get("/metrics", metrics)

    return Feature("metrics", port, register)
