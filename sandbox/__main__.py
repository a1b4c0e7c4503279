"""`python -m sandbox`: the local Bot API server and its chat page on SANDBOX_PORT, alone.

Its bot token and page secret are made for this run. The page's address (with the secret) is
printed; the bot's settings (TELEGRAM_BOT_TOKEN, TELEGRAM_API_BASE_URL) go to a file only you can
read, `var/sandbox.env` (MARKETRANK_VAR_DIR), never to the terminal. `make run` does all this and
starts the bot for you.
"""

import os
import signal
import sys
from pathlib import Path

from analysis.settings import get_settings
from sandbox.access import new_page_secret
from sandbox.launch import chat_page_url, new_bot_token, open_sandbox


def write_bot_settings(path: Path, token: str, base_url: str) -> None:
    """The bot's settings against this sandbox, in a file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as file:
        file.write(f"TELEGRAM_BOT_TOKEN={token}\nTELEGRAM_API_BASE_URL={base_url}\n")


def main() -> int:
    port = get_settings().sandbox_port
    token, secret = new_bot_token(), new_page_secret()
    try:
        server = open_sandbox(port, token=token, secret=secret)
    except RuntimeError as exc:
        print(f"sandbox: cannot listen on 127.0.0.1:{port} ({exc.__cause__}); set SANDBOX_PORT")
        return 1
    settings_file = Path(os.environ.get("MARKETRANK_VAR_DIR", "var")) / "sandbox.env"
    write_bot_settings(settings_file, token, server.base_url)
    print(
        f"sandbox: chat page on {chat_page_url(server, secret)} ; the bot's settings "
        f"(its token for this run) are in {settings_file}",
        flush=True,
    )
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
