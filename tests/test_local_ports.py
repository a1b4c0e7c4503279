"""`make run` owns its ports: its own Redis on REDIS_PORT, Flower on FLOWER_PORT; a port already
taken is reported with the setting to change, and a Redis it did not start is used only when
REDIS_URL names it."""

import os
import socket
import subprocess
import sys
import threading
from urllib.parse import urlparse

import pytest

from analysis.settings import Settings
from launcher.ports import PortProblem, check_flower_port, plan_redis
from tests.servers import ROOT, free_port


@pytest.fixture
def http_service():
    """Something that is not Redis, listening on a port (answers like an HTTP server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_a_free_port_gets_make_runs_own_redis(tmp_path):
    port = free_port()
    plan = plan_redis("", False, port, tmp_path)
    assert (plan.url, plan.start_on_port) == (f"redis://127.0.0.1:{port}/0", port)


def test_a_redis_make_run_did_not_start_is_not_used_unless_redis_url_names_it(redis_url, tmp_path):
    port = urlparse(redis_url).port
    with pytest.raises(PortProblem) as refused:
        plan_redis("", False, port, tmp_path)
    message = str(refused.value)
    assert f"port {port} has a Redis that make run did not start" in message
    assert f"REDIS_URL=redis://127.0.0.1:{port}/0" in message and "REDIS_PORT" in message
    plan = plan_redis(redis_url, True, 6379, tmp_path)
    assert (plan.url, plan.start_on_port) == (redis_url, None)
    assert "did not start it" in plan.note


def test_a_service_that_is_not_redis_gets_a_hint(http_service, tmp_path):
    with pytest.raises(PortProblem) as refused:
        plan_redis("", False, http_service, tmp_path)
    assert "is in use by a service that is not Redis; set REDIS_PORT" in str(refused.value)
    with pytest.raises(PortProblem) as refused:
        plan_redis(f"redis://127.0.0.1:{http_service}/0", True, 6379, tmp_path)
    assert "answers, but not as Redis" in str(refused.value)
    with pytest.raises(PortProblem) as refused:  # the password in REDIS_URL is never shown
        plan_redis(f"redis://app:s3cret-pw@127.0.0.1:{http_service}/0", True, 6379, tmp_path)
    assert f"REDIS_URL=redis://app:***@127.0.0.1:{http_service}/0" in str(refused.value)
    assert "s3cret-pw" not in str(refused.value)


def test_a_taken_flower_port_names_the_setting(http_service):
    with pytest.raises(PortProblem) as refused:
        check_flower_port(http_service)
    assert f"port {http_service} is in use" in str(refused.value) and "FLOWER_PORT" in str(refused.value)
    check_flower_port(free_port())  # a free one is fine


def test_redis_url_defaults_to_the_local_redis_port(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("REDIS_PORT", "6390")
    settings = Settings()
    assert settings.redis_url == "redis://127.0.0.1:6390/0" and not settings.redis_url_explicit
    monkeypatch.setenv("REDIS_URL", "redis://10.0.0.5:6379/2")
    assert Settings().redis_url_explicit


@pytest.mark.slow
def test_make_run_refuses_someone_elses_redis_with_one_line_and_starts_nothing(redis_url, tmp_path):
    env = {
        **os.environ,
        "REDIS_URL": "",
        "REDIS_PORT": str(urlparse(redis_url).port),
        "MARKETRANK_VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "launcher.run", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    errors = [line for line in done.stdout.splitlines() if "error:" in line]
    assert len(errors) == 1 and "did not start" in errors[0] and "REDIS_PORT" in errors[0]
    assert "started" not in done.stdout and "Traceback" not in done.stdout + done.stderr
