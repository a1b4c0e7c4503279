"""GET /export/<schedule id>: the schedule's latest completed top K as freqtrade's RemotePairList
JSON, for `Authorization: Bearer <the schedule's export token>` (analysis/export.py).

A missing, wrong, revoked or another schedule's token, and an unknown schedule, all get the same
401 and nothing else. A schedule whose latest run failed (or is still running) serves its last
good list; every list says its age: `X-Pairlist-Age` (seconds since its run completed),
`Last-Modified`, and `X-Pairlist-Latest-Run` (the latest run's status: completed, failed, ...).
"""

from __future__ import annotations

import asyncio
import logging
from email.utils import formatdate

from aiohttp import web

from analysis.export import NoList, PairListReader
from listener.app import Feature
from listener.door import one_line

logger = logging.getLogger(__name__)

UNAUTHORIZED = "Unauthorized: send this schedule's export token as Authorization: Bearer <token>"


def bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def export_feature(reader: PairListReader, port: int | None) -> Feature:
    async def pairlist(request: web.Request) -> web.StreamResponse:
        schedule_id = request.match_info["schedule_id"]
        schedule = await asyncio.to_thread(reader.authorized, schedule_id, bearer(request))
        if schedule is None:
            logger.info("export: 401 for schedule %r", schedule_id[:40])
            return one_line(401, UNAUTHORIZED, **{"WWW-Authenticate": 'Bearer realm="marketrank"'})
        try:
            found = await asyncio.to_thread(reader.pair_list, schedule)
        except NoList as err:
            return one_line(503, f"Service Unavailable: {err}", **{"Retry-After": "60"})
        logger.info(
            "[%s] export: schedule %s served %d pairs (age %d s, latest run %s)",
            found.analysis_id,
            schedule.id,
            len(found.body["pairs"]),
            found.age_s,
            found.latest_run,
        )
        return web.json_response(
            found.body,
            headers={
                "X-Pairlist-Age": str(found.age_s),
                "X-Pairlist-Latest-Run": found.latest_run,
                "Last-Modified": formatdate(found.completed_at, usegmt=True),
            },
        )

    def register(app: web.Application) -> None:
        app.router.add_get("/export/{schedule_id}", pairlist)

    return Feature("export", port, register)
