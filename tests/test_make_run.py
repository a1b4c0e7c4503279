"""`make run`'s main job: with no Redis reachable it starts one, starts the worker and beat, runs
a demo analysis end to end and prints the ranking."""

import json
import os
import signal
import subprocess
import sys
import time
from urllib.request import Request, urlopen

import pytest

from tests.servers import ROOT, free_port

pytestmark = pytest.mark.e2e  # make run's whole stack


def test_make_run_starts_its_own_redis_and_prints_a_demo_ranking(tmp_path):
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "MARKETRANK_VAR_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "tasks.run_local", "--once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting redis-server" in done.stdout
    assert "COMPLETED" in done.stdout and "DEMO DATA" in done.stdout
    table = done.stdout.split("rank  symbol")[1].split("[make run]")[0].strip().splitlines()[1:]
    assert [row.split()[0] for row in table] == [str(i) for i in range(1, 11)]
    assert all(row.split()[1].endswith("/USDT") for row in table)
    assert (tmp_path / "appendonly.aof").exists() or (tmp_path / "appendonlydir").is_dir()


def test_make_run_without_a_token_serves_the_sandbox_with_the_real_bot(tmp_path):
    """No TELEGRAM_BOT_TOKEN: the chat page's address comes first, the real bot answers there, and
    the sandbox's admin is the bot's admin."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "TELEGRAM_BOT_TOKEN": "",
           "SANDBOX_PORT": str(port), "FLOWER_PORT": str(free_port()),  # no port shared with a parallel run
           "MARKETRANK_VAR_DIR": str(tmp_path), "DEFAULT_MARKETS": "8",
           "DEFAULT_TOP_K": "3", "ADMIN_USER_IDS": "", "ALLOWED_USER_IDS": "1"}
    run = subprocess.Popen([sys.executable, "-m", "tasks.run_local"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        for line in run.stdout:
            lines.append(line)
            if "the stack is running" in line:
                break
        assert f"in your browser at http://127.0.0.1:{port}/" in lines[0], "".join(lines)
        assert "local sandbox, not Telegram" in lines[1] and "Carol (admin, id 710003)" in lines[1]
        assert "TELEGRAM_BOT_TOKEN" in "".join(lines) and "COMPLETED" in "".join(lines)

        page = f"http://127.0.0.1:{port}"
        assert "local sandbox" in urlopen(f"{page}/", timeout=5).read().decode()
        send = Request(f"{page}/api/send", data=json.dumps(
            {"user_id": 710003, "chat_id": 710003, "text": "/help"}).encode(),
            headers={"Content-Type": "application/json"})
        urlopen(send, timeout=5)
        deadline = time.monotonic() + 60
        replies: list[str] = []
        while time.monotonic() < deadline and not replies:
            chat = json.load(urlopen(f"{page}/api/chat?user_id=710003&chat_id=710003&since=-1", timeout=30))
            replies = [m["text"] for m in chat["messages"] if m["from_bot"]]
            time.sleep(0.3)
        assert replies and "/force_resume" in replies[0], replies  # the admin's help
    finally:
        run.send_signal(signal.SIGTERM)
        rest = run.communicate(timeout=60)[0]
    assert run.returncode == 0, "".join(lines) + rest
