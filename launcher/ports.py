"""`make run`'s ports: which Redis to use, whether Flower's port is free, and what to say if not.

The rule: `make run` starts its own redis-server on REDIS_PORT (data under var/, append-only) and
uses a Redis it did not start only when REDIS_URL names it explicitly. A port already taken is
reported with the setting to change, never used silently.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import redis

from analysis.redaction import url_without_password

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


class PortProblem(Exception):
    """A port `make run` needs is unusable; the message says which setting to change."""


@dataclass(frozen=True)
class RedisPlan:
    url: str
    start_on_port: int | None  # None: use the Redis at `url` as it is
    note: str


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def probe_redis(url: str, timeout: float = 1.0) -> str:
    """'redis' (answers PING), 'closed' (nothing listens) or 'other' (something that is not Redis)."""
    parsed = urlparse(url)
    if not port_in_use(parsed.port or 6379, parsed.hostname or "127.0.0.1"):
        return "closed"
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
        return "redis"
    except redis.AuthenticationError:
        return "redis"
    except (redis.RedisError, OSError):
        return "other"
    finally:
        client.close()


def redis_dir(url: str) -> Path | None:
    """The data folder of the Redis at `url` (CONFIG GET dir), or None when it will not say."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        return Path(str(client.config_get("dir").get("dir") or ""))
    except (redis.RedisError, OSError):
        return None


def plan_redis(url: str, explicit: bool, port: int, var_dir: Path) -> RedisPlan:
    """Which Redis `make run` uses, or a PortProblem naming the setting to change."""
    if explicit:
        parsed, shown = urlparse(url), url_without_password(url)
        state = probe_redis(url)
        if state == "redis":
            return RedisPlan(url, None, f"using the Redis at REDIS_URL ({shown}); make run did not start it")
        if state == "other":
            raise PortProblem(
                f"REDIS_URL={shown} answers, but not as Redis (another service on port "
                f"{parsed.port or 6379}?); point REDIS_URL at a Redis, or remove it "
                f"from .env and let make run start one on REDIS_PORT"
            )
        if parsed.hostname not in LOCAL_HOSTS:
            raise PortProblem(
                f"no Redis answers at REDIS_URL={shown}; start it, or remove REDIS_URL "
                f"from .env and let make run start one on REDIS_PORT"
            )
        return RedisPlan(url, parsed.port or 6379, f"no Redis at REDIS_URL ({shown}): starting redis-server")
    local_url = f"redis://127.0.0.1:{port}/0"
    state = probe_redis(local_url)
    if state == "closed":
        return RedisPlan(local_url, port, f"starting redis-server on port {port}")
    if state == "redis":
        found = redis_dir(local_url)
        if found is not None and found.resolve() == var_dir.resolve():
            return RedisPlan(
                local_url,
                None,
                f"using the redis-server an earlier make run left on port {port} (data in {var_dir})",
            )
        raise PortProblem(
            f"port {port} has a Redis that make run did not start; to use it, set "
            f"REDIS_URL={local_url} in .env; to keep marketrank apart, set REDIS_PORT "
            f"to a free port"
        )
    raise PortProblem(
        f"port {port} is in use by a service that is not Redis; set REDIS_PORT to a free port in .env"
    )


def check_flower_port(port: int) -> None:
    if port_in_use(port):
        raise PortProblem(
            f"port {port} is in use, so Flower cannot start there; set FLOWER_PORT to a free port in .env"
        )


def check_export_port(port: int) -> None:
    if port_in_use(port):
        raise PortProblem(
            f"port {port} is in use, so the export listener cannot start there; set "
            f"EXPORT_PORT to a free port in .env"
        )
