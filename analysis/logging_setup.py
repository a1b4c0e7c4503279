"""One logging set-up shared by the bot, the workers and the CLI.

Step log lines carry `[analysis-id chain=... seq=...]`; secrets are never logged (settings hold
them as SecretStr, and the HTTP client loggers that would print request URLs with the bot
token are kept at WARNING).
"""

import logging
import os

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"


def configure_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("LOG_LEVEL", "INFO")).upper()
    logging.basicConfig(level=level, format=FORMAT, force=True)
    # httpx logs every request URL at INFO, and Telegram URLs contain the bot token.
    for noisy in ("httpx", "httpcore", "httpx2", "httpcore2", "telegram.ext.ExtBot"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
