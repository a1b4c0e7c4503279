"""The settings of the HTTP listener (listener/): the export of a schedule's top K for freqtrade
(docs/export.md) and Prometheus's /metrics (docs/operations.md).

A mixin of `Settings`, kept apart so settings.py stays small.
"""

from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode


class ListenerSettings(BaseModel):
    # --- Export listener (docs/export.md): a schedule's top K as freqtrade's RemotePairList ------
    # Empty: off. `make run` serves it on 8090 unless set. Bound to EXPORT_BIND (loopback).
    export_port: int | None = Field(None, ge=1, le=65535)
    export_bind: str = "127.0.0.1"
    # Host names (no port) a request may be addressed to; anything else gets 403 (DNS rebinding).
    export_allowed_hosts: Annotated[list[str], NoDecode] = ["127.0.0.1", "localhost", "[::1]"]
    # The address traders are given (a reverse proxy's, e.g. https://rank.example.com); empty:
    # http://127.0.0.1:EXPORT_PORT.
    export_public_url: str = ""

    @field_validator("export_port", mode="before")
    @classmethod
    def _empty_port_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("export_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    # --- Prometheus metrics (docs/operations.md): GET /metrics on the HTTP listener ----------
    # Empty: off. `make run` serves it on 9108 unless set, on EXPORT_BIND with EXPORT_ALLOWED_HOSTS.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    # The scraper sends `Authorization: Bearer <METRICS_TOKEN>`; without a token /metrics answers 401.
    metrics_token: SecretStr | None = None
    # false: steps keep no Prometheus counters (their one HINCRBY batch); for `make bench`'s "off".
    metrics_step_counters: bool = True

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_metrics_port_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
