"""The one place Redis clients are made: REDIS_URL as written, or, with REDIS_SENTINELS set, the
primary that Sentinel names (REDIS_SENTINEL_MASTER). A client through Sentinel asks the sentinels
for the primary on every new connection, so after a failover its retries land on the promoted
replica by themselves. REDIS_URL still gives the database number and the password."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelManagedConnection
from redis.sentinel import Sentinel, SentinelManagedConnection

# Sentinels answer at once or are down: a short timeout lets the client try the next one.
SENTINEL_TIMEOUT_S = 0.5


def sentinel_addresses(text: str) -> list[tuple[str, int]]:
    """`host:port,host:port` -> [(host, port)]; a one-line ValueError names the bad entry."""
    addresses = []
    for entry in (part.strip() for part in text.split(",")):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"REDIS_SENTINELS entry {entry!r} is not host:port (e.g. 10.0.0.1:26379,10.0.0.2:26379)"
            )
        addresses.append((host, int(port)))
    return addresses


class PrimaryConnection(SentinelManagedConnection):
    """Asks the sentinels for the primary on every connect. redis-py's own class asks only in
    connect(); a command retried after a connection error reconnects to the address it had
    (redis/redis-py#3874), so a step's commit in flight when the primary died retried the dead
    address for its whole retry budget (about 35 s), or wrote to the old primary if it was back."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock or not self.connection_pool.is_master:
            return super().connect_check_health(check_health, retry_socket_connect)

        def connect_to_primary() -> None:
            self.connect_to(self.connection_pool.get_master_address())

        if retry_socket_connect:
            self.retry.call_with_retry(connect_to_primary, lambda error: self.disconnect())
        else:
            connect_to_primary()

    def connect_to(self, address: tuple[str, int]) -> None:
        self.host, self.port = address  # just asked for: connect without asking again
        super().connect_check_health(self.connection_pool.check_connection, False)


class AsyncPrimaryConnection(AsyncSentinelManagedConnection):
    """PrimaryConnection for the bot's asyncio client."""

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self.is_connected or not self.connection_pool.is_master:
            return await super().connect_check_health(check_health, retry_socket_connect)

        async def connect_to_primary() -> None:
            await self.connect_to(await self.connection_pool.get_master_address())

        if retry_socket_connect:
            await self.retry.call_with_retry(connect_to_primary, lambda error: self.disconnect())
        else:
            await connect_to_primary()

    async def connect_to(self, address: tuple[str, int]) -> None:
        self.host, self.port = address
        await super().connect_check_health(self.connection_pool.check_connection, False)


def _db_and_password(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    path = parts.path.strip("/")
    return {
        "db": int(path) if path.isdigit() else 0,
        "password": unquote(parts.password) if parts.password else None,
    }


def redis_client(settings: Any, **options: Any) -> redis.Redis:
    """A blocking client of marketrank's Redis; `options` as redis.Redis takes them."""
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, **options)
    sentinel = Sentinel(
        sentinel_addresses(settings.redis_sentinels), sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S}
    )
    return sentinel.master_for(
        settings.redis_sentinel_master,
        connection_class=PrimaryConnection,
        **{**_db_and_password(settings.redis_url), **options},
    )


def async_redis_client(settings: Any, **options: Any) -> aioredis.Redis:
    """The asyncio client (the bot's) of the same Redis."""
    if not settings.redis_sentinels:
        return aioredis.Redis.from_url(settings.redis_url, **options)
    sentinel = AsyncSentinel(
        sentinel_addresses(settings.redis_sentinels), sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S}
    )
    return sentinel.master_for(
        settings.redis_sentinel_master,
        connection_class=AsyncPrimaryConnection,
        **{**_db_and_password(settings.redis_url), **options},
    )


def broker_url(settings: Any) -> str:
    """Celery's broker: REDIS_URL, or kombu's `sentinel://h1:p1;sentinel://h2:p2/db` transport."""
    if not settings.redis_sentinels:
        return settings.redis_url
    parts = urlsplit(settings.redis_url)
    auth = f":{parts.password}@" if parts.password else ""
    db = _db_and_password(settings.redis_url)["db"]
    return ";".join(
        f"sentinel://{auth}{host}:{port}/{db}" for host, port in sentinel_addresses(settings.redis_sentinels)
    )


def broker_transport_options(settings: Any) -> dict[str, Any]:
    """What kombu's sentinel transport needs beside the URL (nothing without Sentinel)."""
    if not settings.redis_sentinels:
        return {}
    return {
        "master_name": settings.redis_sentinel_master,
        "sentinel_kwargs": {"socket_timeout": SENTINEL_TIMEOUT_S},
    }


def broker_client(url: str, transport_options: dict[str, Any]) -> redis.Redis:
    """A client of the Redis behind a Celery broker URL (either form above)."""
    if not url.startswith("sentinel://"):
        return redis.Redis.from_url(url)
    first = urlsplit(url.split(";")[0])
    addresses = [(urlsplit(part).hostname or "", urlsplit(part).port or 26379) for part in url.split(";")]
    sentinel = Sentinel(addresses, sentinel_kwargs=transport_options.get("sentinel_kwargs"))
    path = first.path.strip("/")
    return sentinel.master_for(
        transport_options["master_name"],
        db=int(path) if path.isdigit() else 0,
        password=unquote(first.password) if first.password else None,
    )
