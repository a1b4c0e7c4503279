"""A load balancer for tests: forwards each request to the next backend in turn (round robin),
headers and body as they are, Host included (nginx's `proxy_set_header Host $host`: the bot's
listener answers only the webhook URL's host); a backend that does not answer gets a 502, as nginx
gives, and the sender (the sandbox playing Telegram) retries. Runs its own loop in a thread."""

from __future__ import annotations

import asyncio
import collections
import json
import threading

import aiohttp
from aiohttp import web

HOP_HEADERS = {"content-length", "transfer-encoding", "connection"}


def update_id_of(body: bytes) -> int:
    """The update id of a Telegram update's JSON body; -1 for anything else."""
    try:
        update_id = json.loads(body).get("update_id")
    except (ValueError, AttributeError):
        return -1
    return update_id if isinstance(update_id, int) else -1


class RoundRobinProxy:
    def __init__(self, backends: list[str]):
        self.backends = backends  # base URLs, e.g. http://127.0.0.1:8443
        self.forwarded: collections.Counter[str] = collections.Counter()  # backend -> 2xx answers
        self.failed: collections.Counter[str] = collections.Counter()
        self.in_flight: dict[int, str] = {}  # update id -> the backend it was sent to, unanswered yet
        self._turn = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        threading.Thread(target=self._serve, name="round-robin-proxy", daemon=True).start()
        if not self._ready.wait(10):
            raise TimeoutError("the proxy did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]

    async def _forward(self, request: web.Request) -> web.Response:
        backend = self.backends[self._turn % len(self.backends)]
        self._turn += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        update_id = update_id_of(body)
        self.in_flight[update_id] = backend
        try:
            async with self._session.request(
                request.method, backend + request.path_qs, data=body, headers=headers
            ) as answer:
                body = await answer.read()
                (self.forwarded if answer.status < 300 else self.failed)[backend] += 1
                return web.Response(status=answer.status, body=body)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            self.failed[backend] += 1
            return web.Response(status=502, text="bad gateway")
        finally:
            self.in_flight.pop(update_id, None)
