"""Bot instances on the webhook behind a round-robin proxy, for tests and bench/webhooks_bench.py:
each `python -m bot` process listens on its own port; the sandbox posts to the proxy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sandbox import BotApiServer, ChatMessage
from tests.round_robin_proxy import RoundRobinProxy
from tests.servers import ROOT, free_port

SECRET = "wh-secret_for-tests"
PATH = "/telegram"
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def rank_update(update_id: int, user_id: int, text: str) -> dict:
    """The update Telegram sends when `user_id` types `text` (a 5-letter command) to the bot."""
    user = {"id": user_id, "is_bot": False, "first_name": "Tester"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"},
            "from": user,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }


def post_update(
    url: str,
    update: dict,
    secret: str | None,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> int:
    """POST an update as Telegram would (with `secret` in its header, if any, and `host` as the
    Host header, if given); `headers` and `body` replace Telegram's. The HTTP status."""
    return post(url, update, secret, host, headers, body)[0]


def post(
    url: str,
    update: dict,
    secret: str | None,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, str]:
    """`post_update`'s status and the answer's text (0 and "" when nobody listens)."""
    sent = {"Content-Type": "application/json"}
    if secret is not None:
        sent["X-Telegram-Bot-Api-Secret-Token"] = secret
    if host is not None:
        sent["Host"] = host
    data = json.dumps(update).encode() if body is None else body
    request = urllib.request.Request(url, data=data, headers={**sent, **(headers or {})})
    try:
        with _HTTP.open(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):  # nobody listens (yet)
        return 0, ""


def preflight(url: str) -> tuple[int, dict[str, str]]:
    """A browser's CORS preflight from a page on another origin, asking to send the secret header."""
    request = urllib.request.Request(
        url,
        method="OPTIONS",
        headers={
            "Origin": "https://page.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-telegram-bot-api-secret-token",
        },
    )
    try:
        with _HTTP.open(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


class Instances:
    """`count` bot processes sharing one token, one Redis and one webhook (the proxy)."""

    def __init__(self, api: BotApiServer, traders: list[int], log_dir: Path, count: int = 2, **env: str):
        self.api, self.log_dir = api, log_dir
        self.ports = [free_port() for _ in range(count)]
        self.proxy = RoundRobinProxy([f"http://127.0.0.1:{port}" for port in self.ports])
        self.env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "ALLOWED_USER_IDS": ",".join(map(str, traders)),
            "ADMIN_USER_IDS": "",
            "TELEGRAM_WEBHOOK_URL": self.proxy.url + PATH,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
            "EVENTS_CLAIM_IDLE_S": "2",
            "SCORE_BATCH_SIZE": "1",
            "CARD_EDIT_INTERVAL_S": "0.3",
            **env,
        }
        self.processes: list[subprocess.Popen | None] = [None] * count

    def url(self, index: int) -> str:
        """Where instance `index` listens (bypassing the proxy)."""
        return f"http://127.0.0.1:{self.ports[index]}{PATH}"

    @property
    def host(self) -> str:
        """The webhook URL's host:port, the only Host the instances answer (the proxy forwards it)."""
        return f"127.0.0.1:{self.proxy.port}"

    def start(self) -> Instances:
        for index, port in enumerate(self.ports):
            env = {**self.env, "TELEGRAM_WEBHOOK_PORT": str(port), "BOT_INSTANCE": f"instance-{index}"}
            log = open(self.log_dir / f"bot-{index}.log", "ab")
            self.processes[index] = subprocess.Popen(
                [sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        for index in range(len(self.ports)):
            self._wait_listening(index)
        return self

    def _wait_listening(self, index: int, timeout: float = 60) -> None:
        """Until the instance's door is open (an empty request to the webhook's Host without the
        secret: 403)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[index]
            assert process is not None and process.poll() is None, self.log(index)[-3000:]
            if post_update(self.url(index), {}, None, host=self.host) == 403:
                return
            time.sleep(0.2)
        raise TimeoutError(f"instance {index} does not listen: {self.log(index)[-3000:]}")

    def kill(self, index: int) -> None:
        process = self.processes[index]
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            if process is not None:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()

    def log(self, index: int) -> str:
        path = self.log_dir / f"bot-{index}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def overlapping_edits(api: BotApiServer, card: ChatMessage) -> list[tuple[float, float]]:
    """Pairs of editMessageText calls on `card` that were in flight at the same time."""
    calls = sorted(
        (
            c
            for c in api.calls_of("editMessageText")
            if c.params.get("chat_id") == card.chat_id
            and c.params.get("message_id") == card.message_id
            and c.answered is not None
        ),
        key=lambda c: c.received,
    )
    return [(a.received, b.received) for a, b in zip(calls, calls[1:]) if b.received < (a.answered or 0)]


def repeated_edits(api: BotApiServer, card: ChatMessage) -> int:
    """Edits of `card` refused as "message is not modified": an instance repeated what it showed."""
    return sum(
        1
        for c in api.calls_of("editMessageText")
        if c.params.get("chat_id") == card.chat_id
        and c.params.get("message_id") == card.message_id
        and c.status == 400
        and "not modified" in (c.description or "")
    )


class FlakyBotApi:
    """A Bot API server that answers getMe and every other method, but setWebhook first with the
    `failures` in turn ((HTTP status, description[, retry_after]); then forever if `forever`), then
    true. `webhooks` keeps the params of every setWebhook call."""

    def __init__(self, failures: list[tuple], forever: bool = False):
        import http.server
        import threading
        import urllib.parse

        self.webhooks: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                method = self.path.rsplit("/", 1)[-1]
                answer: dict = {"ok": True, "result": True}
                if method == "getMe":
                    answer["result"] = {
                        "id": 424242,
                        "is_bot": True,
                        "first_name": "Flaky",
                        "username": "flaky_bot",
                    }
                elif method == "setWebhook":
                    params = (
                        json.loads(body)
                        if self.headers.get_content_type() == "application/json"
                        else dict(urllib.parse.parse_qsl(body))
                    )
                    outer.webhooks.append({k: str(v) for k, v in params.items()})
                    tries = len(outer.webhooks)
                    failure = (
                        failures[tries - 1] if tries <= len(failures) else (failures[-1] if forever else None)
                    )
                    if failure is not None:
                        answer = {"ok": False, "error_code": failure[0], "description": failure[1]}
                        if len(failure) > 2:
                            answer["parameters"] = {"retry_after": failure[2]}
                self._send(200 if answer["ok"] else answer["error_code"], answer)

            def _send(self, status: int, answer: dict) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
