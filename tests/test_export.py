"""Export to freqtrade (#24, item 3) over HTTP: the real listener (`python -m listener`, a child
process on a free port) over the real Redis, with runs made by a schedule's firings.

What freqtrade reads is checked field by field against its RemotePairList as released
(freqtrade 2026.9, freqtrade/plugins/pairlist/RemotePairList.py: `fetch_pairlist`, `process_json`;
pairlist_helpers.py: `expand_pairlist`): freqtrade itself is not installed here (it pins
ccxt>=4.5.76 and brings scipy, pyarrow, fastapi... into the shared environment).
"""

import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from analysis.export import ExportService, PairListReader
from analysis.schedules.service import ScheduleService
from analysis.schedules.store import ScheduleStore
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings
from tasks.schedule_beat import default_registrar
from tests.conftest import wait_until
from tests.helpers import redis_snapshot
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def freqtrade_reads(
    status: int,
    headers: dict[str, str],
    body: bytes,
    exchange_pairs: list[str],
    own_refresh_period: int = 1800,
) -> tuple[list[str], int]:
    """What RemotePairList does with an answer: `fetch_pairlist` (requests.get(...); a body whose
    content-type has no 'application/json' is an error), `process_json` (`pairs`, and
    `refresh_period` read with int(), kept when larger than its own), then `expand_pairlist`
    (each pair a regex matched in full, case-insensitive, against the exchange's markets)."""
    assert status == 200
    assert "application/json" in str(headers.get("content-type"))
    jsonparse = json.loads(body)
    pairlist = jsonparse.get("pairs", [])
    refresh = max(own_refresh_period, int(jsonparse.get("refresh_period", own_refresh_period)))
    expanded = []
    for pair in pairlist:
        comp = re.compile(pair, re.IGNORECASE)
        expanded += [p for p in exchange_pairs if comp.fullmatch(p)]
    return expanded, refresh


@contextlib.contextmanager
def running_listener(port: int, probe: str, **env: str):
    """`python -m listener` with `env`, once `probe` answers 401 (the door is up); stopped after."""
    child = subprocess.Popen(
        [sys.executable, "-m", "listener"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: get(port, probe)[0] == 401, timeout=30, message="the listener answers")
        yield port
    finally:
        child.terminate()
        child.wait(10)


@pytest.fixture(scope="module")
def listener_port():
    port = free_port()
    with running_listener(port, "/export/none", EXPORT_PORT=str(port)):
        yield port


def get(
    port: int, path: str, token: str | None = None, host: str | None = None, extra: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host or f"127.0.0.1:{port}", **(extra or {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request("GET", path, headers=headers)
    except OSError:
        return 0, {}, b""
    response = connection.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


@pytest.fixture
def schedules(runtime, queue, factory, listener_port):
    settings = Settings(
        schedule_min_interval_s=1, allowed_user_ids=[], admin_user_ids=[], export_port=listener_port
    )
    return ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys),
        AnalysisService(runtime.store, queue),
        factory,
        default_registrar(),
        settings,
    )


def run_once(schedules, runtime, queue, schedule_id: str) -> str:
    fired = schedules.fire(schedule_id, fire_id=uuid.uuid4().hex)
    assert fired.code == "started"
    queue.drain(runtime)
    return fired.analysis_id


def owner() -> Actor:
    return Actor(str(uuid.uuid4().int % 10**9))


@pytest.mark.slow
def test_the_token_gets_the_top_k_as_freqtrade_reads_it(schedules, runtime, queue, listener_port):
    alice = owner()
    made = schedules.add("4h", {"markets": 6, "top_k": 3}, alice)
    exports = ExportService(schedules)
    issued = exports.enable(made.id, alice)
    assert issued.url == f"http://127.0.0.1:{listener_port}/export/{made.id}"
    assert len(issued.token) >= 43  # 32 random bytes
    stored = runtime.redis.hgetall(runtime.keys.schedule(made.id))
    assert issued.token.encode() not in b"".join(stored.values())  # only its sha256 is kept
    path = issued.url.split(str(listener_port), 1)[1]
    assert get(listener_port, path, issued.token)[0] == 503  # no completed run yet: no list
    run = run_once(schedules, runtime, queue, made.id)
    status, headers, body = get(listener_port, path, issued.token)
    top = [item.symbol for item in runtime.store.load(run).result]
    assert json.loads(body) == {"pairs": top, "refresh_period": 4 * 3600}
    pairs, refresh = freqtrade_reads(status, headers, body, exchange_pairs=["BTC/USDT", "ETH/USDT", *top])
    assert pairs == top and refresh == 4 * 3600 and all(p.endswith("/USDT") for p in pairs)
    assert 0 <= int(headers["x-pairlist-age"]) < 60 and headers["x-pairlist-latest-run"] == "completed"
    assert not any(name.startswith("access-control") for name in headers)
    # Futures: the same markets in ccxt's linear-futures notation, BTC/USDT:USDT.
    futures = exports.enable(made.id, alice, "freqtrade-futures")
    status, headers, body = get(listener_port, path, futures.token)
    assert freqtrade_reads(status, headers, body, [f"{s}:USDT" for s in top] + top)[0] == [
        f"{s}:USDT" for s in top
    ]


@pytest.mark.slow
def test_wrong_revoked_and_other_schedules_tokens_get_401_and_nothing_else(
    schedules, runtime, queue, listener_port
):
    alice, bob = owner(), owner()
    mine = schedules.add("1h", {"markets": 5, "top_k": 2}, alice)
    theirs = schedules.add("1h", {"markets": 5, "top_k": 2}, bob)
    exports = ExportService(schedules)
    token = exports.enable(mine.id, alice).token
    other = exports.enable(theirs.id, bob).token
    run_once(schedules, runtime, queue, mine.id)
    path = f"/export/{mine.id}"
    assert get(listener_port, path, token)[0] == 200
    refusals = [
        get(listener_port, path, None),
        get(listener_port, path, "x" * 43),
        get(listener_port, path, other),
        get(listener_port, path, token[:-1]),
        get(listener_port, "/export/nosuchid", token),
        get(listener_port, path, extra={"Authorization": f"Basic {token}"}),
    ]
    exports.revoke(mine.id, alice)
    refusals.append(get(listener_port, path, token))
    for status, headers, body in refusals:
        assert status == 401 and headers["content-type"].startswith("text/plain")
        assert body.decode().count("\n") == 1 and "pairs" not in body.decode()
    # A new token after a revoke works; the revoked one still does not.
    fresh = exports.enable(mine.id, alice).token
    assert get(listener_port, path, fresh)[0] == 200 and get(listener_port, path, token)[0] == 401
    # A removed schedule takes its export with it.
    schedules.remove(mine.id, alice)
    assert get(listener_port, path, fresh)[0] == 401


def test_a_foreign_host_or_a_web_page_gets_nothing(schedules, runtime, queue, listener_port):
    alice = owner()
    made = schedules.add("1h", {"markets": 5, "top_k": 2}, alice)
    token = ExportService(schedules).enable(made.id, alice).token
    run_once(schedules, runtime, queue, made.id)
    path = f"/export/{made.id}"
    for status, headers, body in [
        get(listener_port, path, token, host=f"attacker.example:{listener_port}"),
        get(listener_port, path, token, host="localhost.attacker.example"),
        get(listener_port, path, token, extra={"Origin": "http://127.0.0.1:9999"}),
        get(listener_port, path, token, extra={"Origin": "null"}),
    ]:
        assert status == 403 and b"pairs" not in body and body.count(b"\n") == 1
        assert not any(name.startswith("access-control") for name in headers)
    assert get(listener_port, path, token, host=f"localhost:{listener_port}")[0] == 200


@pytest.mark.slow
def test_after_a_failed_run_the_last_good_list_is_served_with_its_age(
    schedules, runtime, queue, listener_port
):
    alice = owner()
    made = schedules.add("1h", {"markets": 6, "top_k": 3}, alice)
    token = ExportService(schedules).enable(made.id, alice).token
    good = run_once(schedules, runtime, queue, made.id)
    good_top = [item.symbol for item in runtime.store.load(good).result]
    two_hours_ago = time.time() - 7200
    runtime.redis.hset(runtime.keys.gist(good), "updated_at", repr(two_hours_ago))
    failed = run_once(schedules, runtime, queue, made.id)
    # The next run failed (its data source gave out): planted as the step engine writes a failure.
    runtime.redis.hset(
        runtime.keys.gist(failed), mapping={"status": "FAILED", "reason": "no candles", "result": "[]"}
    )
    status, headers, body = get(listener_port, f"/export/{made.id}", token)
    assert status == 200 and json.loads(body)["pairs"] == good_top
    assert headers["x-pairlist-latest-run"] == "failed"
    assert 7200 <= int(headers["x-pairlist-age"]) < 7260
    assert headers["last-modified"] == time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(two_hours_ago))


def test_the_cli_exports_and_revokes(runtime, listener_port):
    from tests.test_cli import marketrank

    added = marketrank(
        "schedule", "add", "--every", "1h", "--markets", "5", "--top", "2", "--owner", "cli-export"
    )
    schedule_id = added.stdout.splitlines()[-1]
    before = redis_snapshot(runtime.redis)
    off = marketrank("schedule", "export", schedule_id, EXPORT_PORT="")
    assert off.returncode == 2 and "the export listener is off" in off.stderr
    bad = marketrank("schedule", "export", schedule_id, "--format", "csv", EXPORT_PORT=str(listener_port))
    assert bad.returncode == 2 and "invalid choice: 'csv'" in bad.stderr
    assert marketrank("schedule", "export", "nosuchid", EXPORT_PORT=str(listener_port)).returncode == 2
    assert redis_snapshot(runtime.redis) == before
    issued = marketrank("schedule", "export", schedule_id, EXPORT_PORT=str(listener_port))
    assert issued.returncode == 0, issued.stderr
    url = re.search(r"^url: (\S+)$", issued.stdout, re.M)[1]
    token = re.search(r"^token \(shown once\): (\S+)$", issued.stdout, re.M)[1]
    path = url.split(str(listener_port), 1)[1]
    assert get(listener_port, path, token)[0] == 503  # authorized: no completed run yet
    revoked = marketrank("schedule", "export", schedule_id, "--off", EXPORT_PORT=str(listener_port))
    assert revoked.returncode == 0 and "is off" in revoked.stdout
    assert get(listener_port, path, token)[0] == 401


def test_one_process_serves_several_features_on_several_ports():
    """The listener's plan: features by port (two may share one; a feature without a port is off),
    every port behind the same door."""
    import asyncio

    from aiohttp import web

    from listener.app import Feature, plan, start

    def answering(name):
        async def answer(request):
            return web.Response(text=name)

        return lambda app: app.router.add_get(f"/{name}", answer)

    a, b = free_port(), free_port()
    ports = plan(
        [
            Feature("export", a, answering("export")),
            Feature("metrics", b, answering("metrics")),
            Feature("health", a, answering("health")),
            Feature("off", None, answering("off")),
        ]
    )
    assert {port: [f.name for f in features] for port, features in ports.items()} == {
        a: ["export", "health"],
        b: ["metrics"],
    }

    async def scenario():
        runners = await start(ports, "127.0.0.1", ["127.0.0.1"])
        try:
            return await asyncio.to_thread(
                lambda: [
                    get(a, "/export")[0],
                    get(a, "/health")[0],
                    get(b, "/metrics")[0],
                    get(b, "/export")[0],
                    get(b, "/metrics", host=f"attacker.example:{b}")[0],
                ]
            )
        finally:
            for runner in runners:
                await runner.cleanup()

    assert asyncio.run(scenario()) == [200, 200, 200, 404, 403]


@pytest.mark.slow
def test_redis_out_of_reach_is_a_one_line_503_not_a_stack(tmp_path):
    """A listener whose Redis is gone answers a bearer's request with one line, and says why in its
    log (with the traceback), not to the caller."""
    port = free_port()
    env = {
        **os.environ,
        "EXPORT_PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    log = (tmp_path / "listener.log").open("w")
    child = subprocess.Popen(
        [sys.executable, "-m", "listener"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: get(port, "/nothing")[0] == 404, timeout=30, message="the listener answers")
        status, headers, body = get(port, "/export/q7m2k9xa", "A" * 43)
        assert status == 503 and body == b"Service Unavailable: try again later\n"
        assert headers["retry-after"] == "30"
    finally:
        child.terminate()
        child.wait(10)
    assert "Traceback" in (tmp_path / "listener.log").read_text()
