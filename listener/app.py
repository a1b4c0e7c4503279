"""Features, ports and the process: which routes are served on which port, and serving them.

A `Feature` registers its routes on an aiohttp app. `plan(settings, features)` maps each port to
the features it serves (the export on `EXPORT_PORT`; a feature whose port is empty is off; two
features given the same port share it). `serve` runs one aiohttp site per port in one process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from listener.door import door

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feature:
    name: str
    port: int | None  # None: off
    register: Callable[[web.Application], None]


def plan(features: list[Feature]) -> dict[int, list[Feature]]:
    ports: dict[int, list[Feature]] = {}
    for feature in features:
        if feature.port:
            ports.setdefault(feature.port, []).append(feature)
    return ports


def build_app(features: list[Feature], allowed_hosts: list[str]) -> web.Application:
    app = web.Application(middlewares=[door(allowed_hosts)])
    for feature in features:
        feature.register(app)
    return app


async def start(ports: dict[int, list[Feature]], bind: str, allowed_hosts: list[str]) -> list[web.AppRunner]:
    """Start one site per port; the runners, to clean up when done."""
    runners = []
    for port, features in ports.items():
        runner = web.AppRunner(build_app(features, allowed_hosts), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, bind, port).start()
        runners.append(runner)
        logger.info("listener: %s on http://%s:%d", ", ".join(f.name for f in features), bind, port)
    return runners


async def serve(
    ports: dict[int, list[Feature]], bind: str, allowed_hosts: list[str], stop: asyncio.Event
) -> None:
    runners = await start(ports, bind, allowed_hosts)
    try:
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()
