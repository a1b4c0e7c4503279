"""A real Flower against a real worker: its task list says which analysis and step each row is
and what the step answered; idle watchdog passes do not crowd it."""

import base64
import json
import os
import subprocess
import sys
import urllib.request

import pytest

from analysis.service import Actor
from tests.conftest import wait_until
from tests.servers import ROOT, free_port

pytestmark = pytest.mark.usefixtures("worker")
AUTH = "ops:flower-test-password"


class Flower:
    def __init__(self, log_path):
        self.port = free_port()
        self._log = open(log_path, "ab")
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "launcher.flower"],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "FLOWER_PORT": str(self.port), "FLOWER_BASIC_AUTH": AUTH},
        )

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Authorization": "Basic " + base64.b64encode(AUTH.encode()).decode()},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.read()

    def tasks(self) -> dict:
        try:
            return json.loads(self.get("/api/tasks"))
        except OSError:
            return {}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@pytest.fixture
def flower(tmp_path):
    server = Flower(tmp_path / "flower.log")
    yield server
    server.stop()


@pytest.mark.slow
def test_flower_lists_every_step_with_its_analysis_sequence_and_result(flower, service, factory, worker):
    from tasks.dispatcher import CeleryDispatcher

    # Flower is listening to events once it has seen a task go by (a step of no analysis: a no-op).
    wait_until(
        lambda: (
            CeleryDispatcher().enqueue_step("flowerprobe", "0" * 16, 1),
            any(
                (t.get("args") or "").startswith("analysis=flowerprobe ") and t["state"] == "SUCCESS"
                for t in flower.tasks().values()
            ),
        )[1],
        timeout=60,
        interval=1,
        message="Flower to see a task",
    )
    gist = service.start(factory.create_ranking_config(markets=20, top_k=3), Actor("flower-test"))
    done = wait_until(
        lambda: (g := service.get(gist.id, Actor("flower-test"))).status.is_final and g,
        timeout=90,
        message="the analysis to complete",
    )
    assert done.status.value == "COMPLETED"
    # The watchdog's passes run on its own worker (its queue only), as in the Procfile.
    from tasks.celery_app import WATCHDOG_QUEUE
    from tests.servers import Worker

    watchdog = Worker(
        worker.env,
        "flower-watchdog",
        concurrency=1,
        queues=WATCHDOG_QUEUE,
        log_dir=str(worker.log_path.parent),
    ).start()
    passes_before = watchdog.log_path.read_text().count("Task marketrank.watchdog[")
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "beat",
            "--schedule",
            str(flower.log_path.parent / "beat-schedule"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:  # WATCHDOG_INTERVAL_S=1: a pass a second, with nothing to do
        wait_until(
            lambda: watchdog.log_path.read_text().count("Task marketrank.watchdog[") >= passes_before + 6,
            timeout=60,
            message="watchdog passes",
        )
    finally:
        beat.terminate()
        beat.wait(10)
        watchdog.stop()

    def steps_listed():
        rows = [
            t
            for t in flower.tasks().values()
            if (t.get("args") or "").startswith(f"analysis={gist.id} ") and t["state"] == "SUCCESS"
        ]
        return rows if len(rows) == done.seq + 1 else None

    rows = wait_until(steps_listed, timeout=30, interval=0.5, message="every step in Flower")
    by_seq = {int(row["args"].split(" seq=")[1].split()[0]): row for row in rows}
    assert sorted(by_seq) == list(range(done.seq + 1))
    assert by_seq[0]["name"] == "marketrank.init"
    assert {row["name"] for seq, row in by_seq.items() if seq} == {"marketrank.rank_step"}
    assert "'decision': 'completed'" in by_seq[done.seq]["result"]
    assert all("'decision': 'continue'" in by_seq[seq]["result"] for seq in range(done.seq))
    watchdog_rows = [t for t in flower.tasks().values() if t["name"] == "marketrank.watchdog"]
    idle = repr({"kick": 0, "gave_up": 0, "expired": 0})
    assert all(row.get("result") not in (None, idle) for row in watchdog_rows), watchdog_rows
    # The task page shows the args and result columns.
    page = flower.get("/tasks").decode()
    assert ">args<" in page and ">Result<" in page
