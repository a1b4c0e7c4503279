"""Starts Celery Flower for operators (the Procfile's `flower`, which `make run` starts too).

Port FLOWER_PORT; basic auth from FLOWER_BASIC_AUTH ("user:password"); without it Flower listens on
127.0.0.1 only, so the task list is never open to the network. (Flower also reads FLOWER_ADDRESS
itself: `make run` sets 127.0.0.1 and a login made for the run, launcher/run.py.) Listening on
a loopback address, it answers only requests whose Host is that address or localhost with its
port: a page on a name rebound to 127.0.0.1 (DNS rebinding) gets a 403, not the task list. The task
list shows which analysis and step each row is (args: `analysis=<id> seq=<n> chain=<token>`) and
what the step answered (result: decision, progress, confidence).
"""

import logging
from typing import Any

import flower.command
import tornado.httputil
import tornado.web
from flower.app import Flower

from analysis.logging_setup import configure_logging
from analysis.settings import get_settings
from tasks.celery_app import app

logger = logging.getLogger(__name__)

TASKS_COLUMNS = "name,args,state,result,received,runtime,worker,uuid"
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})


def host_allowed(address: str, port: int, host: str) -> bool:
    """May a request with this Host header reach a Flower listening on (address, port)? On a
    loopback address only its own name (or localhost) and port; on the network, any (the
    operator's proxy names it, and the login guards it)."""
    if address not in LOOPBACK_ADDRESSES:
        return True
    return host.lower() in {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}


class HostCheckedFlower(Flower):
    """Flower whose every request is first held to `host_allowed`."""

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.web._HandlerDelegate:
        if not host_allowed(self.options.address, self.options.port, request.headers.get("Host", "")):
            return self.get_handler_delegate(request, tornado.web.ErrorHandler, {"status_code": 403})
        return super().find_handler(request, **kwargs)


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
    flower.command.Flower = HostCheckedFlower  # the `flower` command builds its app by this name
    app.start(argv=flower_argv())


if __name__ == "__main__":
    main()
