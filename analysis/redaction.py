"""Secrets kept out of everything shown or logged: the bot token, the LLM API key, the Flower
password and the password in a Redis URL. Settings hold them as SecretStr; this is for text
that was built from them anyway (a library's exception message, a URL, a child's log tail)."""

import json
import logging
import re
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr


class SecretSettings(Protocol):
    """The settings that hold secrets (analysis/settings.py's Settings; it imports this module)."""

    telegram_bot_token: SecretStr | None
    openai_api_key: SecretStr | None
    flower_basic_auth: SecretStr | None
    redis_url: str


MASK = "***"
# user:password@ up to the last @ of the authority (redis-py accepts an unencoded @ in a password)
_URL_PASSWORD = re.compile(r"//([^:/@\s]*):[^/\s]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]*")


def url_without_password(url: str) -> str:
    """`redis://user:pw@host` → `redis://user:***@host`; `?password=pw` → `?password=***`."""
    return _QUERY_PASSWORD.sub(rf"\1{MASK}", _URL_PASSWORD.sub(rf"//\1:{MASK}@", url))


def secrets_of(settings: SecretSettings) -> list[str]:
    """The secret values in `settings`, as written and as a JSON log line escapes them, longest
    first (a secret may contain a shorter one)."""
    values = [
        secret.get_secret_value()
        for secret in (settings.telegram_bot_token, settings.openai_api_key, settings.flower_basic_auth)
        if secret is not None
    ]
    redis_url = urlsplit(settings.redis_url or "")
    values += [p for p in (redis_url.password, *parse_qs(redis_url.query).get("password", [])) if p]
    values += [unquote(v) for v in values]
    values += [json.dumps(v)[1:-1] for v in values]
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return url_without_password(text)


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then masks the secrets: messages and tracebacks alike (a library
    may put a token in an exception's text, as python-telegram-bot's InvalidToken does)."""

    def __init__(self, inner: logging.Formatter, secrets: list[str]):
        super().__init__()
        self.inner, self.secrets = inner, secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record), self.secrets)
