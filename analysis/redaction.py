"""Secrets kept out of everything shown or logged: the bot token, the LLM API key, the Flower
password and the password in a Redis URL. Settings hold them as SecretStr; this is for text
that was built from them anyway (a library's exception message, a URL, a child's log tail)."""

import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis.settings import Settings

MASK = "***"
_URL_PASSWORD = re.compile(r"//([^:/@]*):[^@/]*@")


def url_without_password(url: str) -> str:
    """`redis://user:pw@host` → `redis://user:***@host`."""
    return _URL_PASSWORD.sub(rf"//\1:{MASK}@", url)


def secrets_of(settings: "Settings") -> list[str]:
    """The secret values in `settings`, longest first (a secret may contain a shorter one)."""
    values = [secret.get_secret_value() for secret in
              (settings.telegram_bot_token, settings.openai_api_key, settings.flower_basic_auth)
              if secret is not None]
    found = _URL_PASSWORD.search(settings.redis_url or "")
    values += [found.group(0)[2:-1].split(":", 1)[1]] if found else []
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
