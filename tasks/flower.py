"""Starts Celery Flower for operators (the Procfile's `flower`, which `make run` starts too).

Port FLOWER_PORT; basic auth from FLOWER_BASIC_AUTH ("user:password"); without it Flower listens on
127.0.0.1 only, so the task list is never open to the network. The task list shows which analysis
and step each row is (args: `analysis=<id> seq=<n> chain=<token>`) and what the step answered
(result: decision, progress, confidence).
"""

import logging

from analysis.logging_setup import configure_logging
from analysis.settings import get_settings
from tasks.celery_app import app

logger = logging.getLogger(__name__)

TASKS_COLUMNS = "name,args,state,result,received,runtime,worker,uuid"


def flower_argv(port: int | None = None) -> list[str]:
    settings = get_settings()
    argv = ["flower", f"--port={port or settings.flower_port}", f"--tasks_columns={TASKS_COLUMNS}"]
    if settings.flower_basic_auth:
        argv.append(f"--basic-auth={settings.flower_basic_auth.get_secret_value()}")
    else:
        logger.warning("FLOWER_BASIC_AUTH is not set: Flower listens on 127.0.0.1 only")
        argv.append("--address=127.0.0.1")
    return argv


def main() -> None:
    configure_logging()
    app.start(argv=flower_argv())


if __name__ == "__main__":
    main()
