"""Starts Celery Flower for operators: basic auth from FLOWER_BASIC_AUTH ("user:password");
without it Flower listens on 127.0.0.1 only, so the task list is never open to the network."""

import logging
import sys

from analysis.logging_setup import configure_logging
from analysis.settings import get_settings
from tasks.celery_app import app

logger = logging.getLogger(__name__)


def flower_argv(port: int = 5555) -> list[str]:
    settings = get_settings()
    argv = ["flower", f"--port={port}"]
    if settings.flower_basic_auth:
        argv.append(f"--basic-auth={settings.flower_basic_auth.get_secret_value()}")
    else:
        logger.warning("FLOWER_BASIC_AUTH is not set: Flower listens on 127.0.0.1 only")
        argv.append("--address=127.0.0.1")
    return argv


def main() -> None:
    configure_logging()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5555
    app.start(argv=flower_argv(port))


if __name__ == "__main__":
    main()
