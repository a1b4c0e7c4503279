"""`python -m sandbox`: the local Bot API server and its chat page on SANDBOX_PORT, alone.

Point a bot at it with TELEGRAM_BOT_TOKEN=<the sandbox token> and
TELEGRAM_API_BASE_URL=http://127.0.0.1:<port>/bot; `make run` does this for you.
"""

import signal
import sys

from analysis.settings import get_settings
from sandbox.launch import open_sandbox


def main() -> int:
    port = get_settings().sandbox_port
    try:
        server = open_sandbox(port)
    except RuntimeError as exc:
        print(f"sandbox: cannot listen on 127.0.0.1:{port} ({exc.__cause__}); set SANDBOX_PORT")
        return 1
    print(f"sandbox: chat page on {server.url}/ ; bot API base URL {server.base_url}", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
