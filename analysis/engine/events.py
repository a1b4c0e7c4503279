"""The progress-event stream (`{prefix}events`) read through a consumer group.

The Lua scripts XADD one entry per change of an analysis (fields id, kind, status, seq, progress,
confidence, at, reason). A reader in a consumer group gets each entry once and keeps it in the
group's pending list until `ack`: entries read but not acknowledged when the reader died are read
again (`read` starts with the consumer's pending entries), so no event is lost across a restart.
Several bot instances are several consumers of one group: each entry goes to one of them, and
with `claim_idle_ms` a reader takes over (XAUTOCLAIM) the entries another consumer read but left
unacknowledged that long: those of an instance that died.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from analysis.db.keys import Keys

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """One stream entry; `entry_id` is what `ack` takes."""

    entry_id: str
    analysis_id: str
    kind: str
    status: str
    seq: int
    progress: float
    confidence: float
    at: float
    reason: str

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str]) -> ProgressEvent:
        """Raises KeyError or ValueError for an entry that is not a progress event."""
        return cls(
            entry_id=entry_id,
            analysis_id=fields["id"],
            kind=fields.get("kind", ""),
            status=fields.get("status", ""),
            seq=int(float(fields.get("seq") or -1)),
            progress=float(fields.get("progress") or 0),
            confidence=float(fields.get("confidence") or 0),
            at=float(fields.get("at") or 0),
            reason=fields.get("reason", ""),
        )


class EventReader:
    """At-least-once reader of the events stream for one consumer of one group.

    `client` must be created with `decode_responses=True`. The group is created at the stream's
    end on first use (older events concern no card of this reader); if it disappears (a flushed
    Redis) it is created again.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        group: str,
        consumer: str,
        block_ms: int = 1000,
        count: int = 100,
        claim_idle_ms: int | None = None,
    ):
        self.redis, self.stream = client, keys.events()
        self.group, self.consumer = group, consumer
        self.block_ms, self.count = block_ms, count
        self.claim_idle_ms = claim_idle_ms  # None: never take over another consumer's entries
        self._next_claim = 0.0
        # This consumer's pending entries first (paged by id from "0"), then ">" for new ones.
        self._cursor = "0"

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self) -> tuple[list[ProgressEvent], list[str]]:
        """The next events (blocking up to `block_ms` when there are none), and the ids of
        malformed entries, which the caller should simply acknowledge."""
        try:
            entries = []
            if self._cursor != ">":
                entries = await self._read_from(self._cursor, block=None)
                self._cursor = entries[-1][0] if entries else ">"
            if self._cursor == ">" and not entries:
                entries = await self._claim_abandoned()
            if self._cursor == ">" and not entries:
                entries = await self._read_from(">", block=self.block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            logger.warning("consumer group %s of %s is gone; creating it again", self.group, self.stream)
            await self.ensure_group()
            self._cursor = "0"
            return [], []
        events, malformed = [], []
        for entry_id, fields in entries:
            if not fields:  # a pending entry trimmed from the stream meanwhile
                malformed.append(entry_id)
                continue
            try:
                events.append(ProgressEvent.from_entry(entry_id, fields))
            except (KeyError, ValueError):
                logger.warning("skipping malformed event %s: %r", entry_id, fields)
                malformed.append(entry_id)
        return events, malformed

    async def _read_from(self, cursor: str, block: int | None) -> list:
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: cursor}, count=self.count, block=block
        )
        return reply[0][1] if reply else []

    async def _claim_abandoned(self) -> list:
        """Entries idle for `claim_idle_ms` in any consumer's pending list, now this one's; looked
        for at most every half idle time, so a claim happens within 1.5 x the idle time."""
        if self.claim_idle_ms is None or time.monotonic() < self._next_claim:
            return []
        self._next_claim = time.monotonic() + self.claim_idle_ms / 2000
        reply: Any = await self.redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id="0-0",
            count=self.count,
        )
        claimed = [entry for entry in reply[1] if entry is not None]
        if claimed:
            logger.info(
                "consumer %s of %s took over %d event(s) left by another bot instance",
                self.consumer,
                self.group,
                len(claimed),
            )
        return claimed

    async def ack(self, entry_ids: list[str]) -> None:
        if entry_ids:
            await self.redis.xack(self.stream, self.group, *entry_ids)

    async def pending_count(self) -> int:
        """How many entries this group has read but not acknowledged."""
        info = await self.redis.xpending(self.stream, self.group)
        return int(info["pending"])
