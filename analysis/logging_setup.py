"""One logging set-up shared by the bot, the workers, beat and Flower.

Step log lines carry `[analysis-id chain=... seq=...]`; secrets are never logged (settings hold
them as SecretStr, the HTTP client loggers that would print request URLs with the bot token are
kept at WARNING, and every line, traceback included, is masked by `RedactingFormatter`).

LOG_FORMAT=text (default) writes lines for a terminal; LOG_FORMAT=json writes one JSON object per
line (python-json-logger) with `analysis`, `chain`, `seq` and `event` taken from that tag and the
word after it (`commit`, `no-op`, `paused` ...), and `task`, the Celery task being run (the tasks
layer hands in how to find it: this module imports no celery).
"""

import logging
import os
import re
from collections.abc import Callable

from pythonjsonlogger.json import JsonFormatter

from analysis.redaction import RedactingFormatter, secrets_of

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"
JSON_FIELDS = (
    "asctime",
    "levelname",
    "name",
    "process",
    "message",
    "analysis",
    "chain",
    "seq",
    "task",
    "event",
)
STEP_TAG = re.compile(
    r"\[(?P<analysis>[A-Za-z0-9]{6,16})(?: chain=(?P<chain>[A-Za-z0-9]+))?"
    r"(?: seq=(?P<seq>-?\d+))?\]:?\s*(?P<event>[A-Za-z][\w-]*)?"
)
NOISY = ("httpx", "httpcore", "httpx2", "httpcore2", "telegram.ext.ExtBot")


class StepFields(logging.Filter):
    """Puts analysis, chain, seq, event and task on every record (None where they do not apply)."""

    def __init__(self, task_name: Callable[[], str | None] | None = None):
        super().__init__()
        self.task_name = task_name

    def filter(self, record: logging.LogRecord) -> bool:
        found = STEP_TAG.search(record.getMessage()) if isinstance(record.msg, str) else None
        values = found.groupdict() if found else {}
        for name in ("analysis", "chain", "seq", "event"):
            if getattr(record, name, None) is None:
                value = values.get(name)
                setattr(record, name, int(value) if name == "seq" and value is not None else value)
        if getattr(record, "task", None) is None:
            record.task = self.task_name() if self.task_name else None
        return True


def log_settings() -> tuple[str, str, list[str]]:
    """LOG_LEVEL, LOG_FORMAT and the secrets to mask, from the settings (environment and .env)."""
    try:
        from analysis.settings import get_settings

        settings = get_settings()
        return settings.log_level, settings.log_format, secrets_of(settings)
    except Exception:  # bad settings are reported by whoever reads them; logging still works
        return os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "text"), []


def configure_logging(
    level: str | None = None, log_format: str | None = None, task_name: Callable[[], str | None] | None = None
) -> None:
    default_level, default_format, secrets = log_settings()
    level = (level or default_level).upper()
    handler = logging.StreamHandler()
    handler.addFilter(StepFields(task_name))
    formatter = (
        JsonFormatter(
            list(JSON_FIELDS), rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}
        )
        if (log_format or default_format) == "json"
        else logging.Formatter(FORMAT)
    )
    handler.setFormatter(RedactingFormatter(formatter, secrets))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request URL at INFO, and Telegram URLs contain the bot token.
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
