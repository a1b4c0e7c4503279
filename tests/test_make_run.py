"""`make run`'s main job: with no Redis reachable it starts one, starts the worker and beat, runs
a demo analysis end to end and prints the ranking."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from tests.servers import ROOT, free_port

pytestmark = pytest.mark.e2e  # make run's whole stack


def test_make_run_starts_its_own_redis_and_prints_a_demo_ranking(tmp_path):
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "MARKETRANK_VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "launcher.run", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting redis-server" in done.stdout
    assert "COMPLETED" in done.stdout and "DEMO DATA" in done.stdout
    table = done.stdout.split("rank  symbol")[1].split("[make run]")[0].strip().splitlines()[1:]
    assert [row.split()[0] for row in table] == [str(i) for i in range(1, 11)]
    assert all(row.split()[1].endswith("/USDT") for row in table)
    assert (tmp_path / "appendonly.aof").exists() or (tmp_path / "appendonlydir").is_dir()


def status_of(request: Request) -> int:
    try:
        with urlopen(request, timeout=10) as answer:
            return answer.status
    except HTTPError as err:
        return err.code


def test_make_run_without_a_token_serves_the_sandbox_with_the_real_bot(tmp_path):
    """No TELEGRAM_BOT_TOKEN: the chat page's address (with the run's secret) comes first, the
    real bot answers there, and the sandbox's admin is the bot's admin. Flower asks for the login
    printed with it (#19, item 10), and the bot's token for this run is printed nowhere."""
    port, flower_port, export_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "TELEGRAM_BOT_TOKEN": "",
        "EXPORT_PORT": str(export_port),
        "SANDBOX_PORT": str(port),
        "MARKETRANK_VAR_DIR": str(tmp_path),
        "DEFAULT_MARKETS": "8",
        "DEFAULT_TOP_K": "3",
        "ADMIN_USER_IDS": "",
        "ALLOWED_USER_IDS": "1",
        "FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": "",
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "launcher.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        for line in run.stdout:
            lines.append(line)
            if "the stack is running" in line:
                break
        printed = re.search(rf"in your browser at (http://127\.0\.0\.1:{port}/\?secret=([\w-]+))$", lines[0])
        assert printed, "".join(lines)
        address, secret = printed.groups()
        assert "local sandbox, not Telegram" in lines[1] and "Carol (admin, id 710003)" in lines[1]
        assert "TELEGRAM_BOT_TOKEN" in "".join(lines) and "COMPLETED" in "".join(lines)

        page = f"http://127.0.0.1:{port}"
        assert "local sandbox" in urlopen(address, timeout=5).read().decode()
        assert status_of(Request(f"{page}/")) == 401  # not without the secret
        as_page = {"X-Sandbox-Secret": secret, "Origin": page}
        send = Request(
            f"{page}/api/send",
            data=json.dumps({"user_id": 710003, "chat_id": 710003, "text": "/help"}).encode(),
            headers={**as_page, "Content-Type": "application/json"},
        )
        urlopen(send, timeout=5)
        deadline = time.monotonic() + 60
        replies: list[str] = []
        while time.monotonic() < deadline and not replies:
            chat = json.load(
                urlopen(
                    Request(f"{page}/api/chat?user_id=710003&chat_id=710003&since=-1", headers=as_page),
                    timeout=30,
                )
            )
            replies = [m["text"] for m in chat["messages"] if m["from_bot"]]
            time.sleep(0.3)
        assert replies and "/force_resume" in replies[0], replies  # the admin's help

        flower = re.search(
            rf"Flower on (http://127\.0\.0\.1:{flower_port}) \(user (\S+), password (\S+), "
            r"made for this run\)",
            lines[-1],
        )
        assert flower, lines[-1]
        flower_url, user, password = flower.groups()
        login = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        assert status_of(Request(f"{flower_url}/api/tasks", headers=login)) == 200
        assert status_of(Request(f"{flower_url}/api/tasks")) == 401
        assert (
            status_of(
                Request(
                    f"{flower_url}/api/tasks", headers={**login, "Host": f"attacker.example:{flower_port}"}
                )
            )
            == 403
        )
        # The export listener (#24): up, a token needed, a foreign Host refused.
        assert f"the export listener on http://127.0.0.1:{export_port}" in lines[-1]
        assert status_of(Request(f"http://127.0.0.1:{export_port}/export/zzzzzzzz")) == 401
        assert (
            status_of(
                Request(
                    f"http://127.0.0.1:{export_port}/export/zzzzzzzz",
                    headers={"Host": f"attacker.example:{export_port}"},
                )
            )
            == 403
        )
    finally:
        run.send_signal(signal.SIGTERM)
        rest = run.communicate(timeout=60)[0]
    assert run.returncode == 0, "".join(lines) + rest
    # The sandbox's bot token of this run: in no line printed nor in any log.
    shown = "".join(lines) + rest + "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    assert "bot.log" in "".join(lines) and not re.search(r"7000000001:[\w-]{35}", shown)
