"""Flower as `make run` starts it (#19, item 10): on 127.0.0.1 with a login made for the run. A
request whose Host is another name (a DNS-rebinding page) gets a 403 and nothing of the task list,
a request without the login a 401 (both in the bad-input catalogue, with this file's fixture), and
the login `make run` prints gets in."""

import base64
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from analysis.settings import get_settings
from launcher.flower import host_allowed
from launcher.run import flower_env
from tests.conftest import wait_until
from tests.servers import ROOT, free_port

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
LOGIN = re.compile(r"user (\S+), password (\S+), made for this run")


@pytest.fixture
def local_flower(tmp_path):
    """`python -m launcher.flower` with the environment `make run` gives it; (port, user, password)."""
    extra, login = flower_env(get_settings())
    user, password = LOGIN.fullmatch(login).groups()
    port = free_port()
    log = open(tmp_path / "flower.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "launcher.flower"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "FLOWER_PORT": str(port), **extra},
    )
    try:
        wait_until(
            lambda: get(port, "/healthcheck")[0] == 200, timeout=60, interval=0.2, message="Flower to answer"
        )
        yield port, user, password
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with _HTTP.open(request, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read().decode()
    except OSError as err:
        return 0, {}, str(err)


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.slow
def test_the_login_make_run_made_gets_in(local_flower):
    """Its refusals (a foreign Host, no login, a wrong one) are in the bad-input catalogue."""
    port, user, password = local_flower
    login = basic(user, password)
    status, _, tasks = get(port, "/api/tasks", login)
    assert status == 200 and tasks.startswith("{")
    assert get(port, "/api/tasks", {**login, "Host": f"localhost:{port}"})[0] == 200
    assert get(port, "/tasks", login)[0] == 200


def test_each_run_makes_its_own_flower_login_unless_the_operator_set_one():
    logins = {flower_env(get_settings())[0]["FLOWER_BASIC_AUTH"] for _ in range(3)}
    assert len(logins) == 3 and all(re.fullmatch(r"ops:[A-Za-z0-9_-]{24}", v) for v in logins)
    settings = get_settings().model_copy(update={"flower_basic_auth": "ops:set-by-operator"})
    env, said = flower_env(settings)
    assert env == {"FLOWER_ADDRESS": "127.0.0.1"} and "set-by-operator" not in said


def test_only_a_flower_on_a_loopback_address_holds_the_host_to_it():
    assert host_allowed("127.0.0.1", 5555, "127.0.0.1:5555")
    assert host_allowed("127.0.0.1", 5555, "LOCALHOST:5555")
    assert not host_allowed("127.0.0.1", 5555, "attacker.example:5555")
    assert not host_allowed("127.0.0.1", 5555, "127.0.0.1:5556")
    assert not host_allowed("localhost", 5555, "")
    # Listening on the network (FLOWER_BASIC_AUTH set, no FLOWER_ADDRESS): the operator's proxy
    # names it and the login guards it.
    assert host_allowed("", 5555, "flower.example.com")
