"""The settings of the bot on Telegram's webhook (docs/operations.md, "Several bot instances").

A mixin of `Settings`, kept apart so settings.py stays small. Empty TELEGRAM_WEBHOOK_URL: long
polling, the default.
"""

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

# Telegram's rule for secret_token: 1-256 characters, A-Z a-z 0-9 _ -.
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class WebhookSettings(BaseModel):
    # The public https URL Telegram posts updates to (a load balancer's, with any number of bot
    # instances behind it). Empty: the bot long-polls.
    telegram_webhook_url: str | None = None
    # Sent by Telegram with every update (X-Telegram-Bot-Api-Secret-Token); other requests get 403.
    telegram_webhook_secret: SecretStr | None = None
    # Where this instance's webhook listener binds (the load balancer forwards to it).
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = Field(8443, ge=1, le=65535)
    # Host headers the listener answers besides the URL's own host[:port] (bot/webhook_door.py):
    # for a load balancer that rewrites Host, e.g. `10.0.0.5:8443`; comma separated, as sent.
    telegram_webhook_hosts: Annotated[list[str], NoDecode] = []
    # This instance's name in the bot's events consumer group. Empty: `<hostname>-<pid>`.
    bot_instance: str = ""
    # Card events another instance read but did not acknowledge for this long (it died) are
    # taken over by a live instance (XAUTOCLAIM).
    events_claim_idle_s: float = Field(5.0, gt=0)

    @field_validator("telegram_webhook_url", mode="before")
    @classmethod
    def _empty_url_is_polling(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError("must be an http(s) URL such as https://bot.example.com/telegram")
        try:  # the listener compares Host with the URL's host[:port]
            port = urlsplit(value).port if value is not None else None
        except ValueError:  # not a number, or out of range
            port = 0
        if port == 0:
            raise ValueError("its port must be a number from 1 to 65535")
        return value

    @field_validator("telegram_webhook_hosts", mode="before")
    @classmethod
    def _split_webhook_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and not _SECRET.match(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> "WebhookSettings":
        if self.telegram_webhook_url and not (
            self.telegram_webhook_secret and self.telegram_webhook_secret.get_secret_value()
        ):
            raise ValueError("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET (every request is checked)")
        return self
