"""The `marketrank` CLI called in this process, for tests about what a command does: the same
stdout, stderr and exit code a subprocess gives, without starting Python and importing the
stack for each call (about a second each). Start-up itself (a bad setting, a closed pipe, a
terminal, the installed script) is tested with real processes."""

import contextlib
import io
import os
import subprocess
from collections.abc import Iterator


@contextlib.contextmanager
def environment(overrides: dict[str, str]) -> Iterator[None]:
    """The process environment with `overrides`, and settings read from it; both restored after."""
    from analysis.settings import get_settings

    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


def marketrank(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`marketrank ARGS` with the environment `env` added, run by the CLI's own `main`."""
    from cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with environment(env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse ends --help and usage errors this way
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess(["marketrank", *args], code, stdout.getvalue(), stderr.getvalue())
