"""LOG_FORMAT=json: a real worker writes one JSON object per log line, and the lines of a step
carry analysis, chain, seq, task and event. Text stays the default."""

import json
import os
import re

import pytest

from analysis.engine.runtime import Runtime
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings
from tasks.celery_app import make_celery
from tasks.dispatcher import CeleryDispatcher
from tests.helpers import wait_for_status
from tests.servers import Worker

JSON_DB = 10  # broker and state of their own: only the JSON worker runs these steps
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR)")


@pytest.mark.slow
def test_json_logs_carry_analysis_chain_seq_task_and_event(redis_url, factory, worker_log_dir):
    url = redis_url.rsplit("/", 1)[0] + f"/{JSON_DB}"
    settings = Settings(redis_url=url)
    runtime = Runtime(settings)
    runtime.redis.flushdb()
    json_worker = Worker(
        {**os.environ, "REDIS_URL": url, "LOG_FORMAT": "json"},
        "json-logs",
        concurrency=1,
        log_dir=worker_log_dir,
    ).start()
    try:
        service = AnalysisService(runtime.store, CeleryDispatcher(make_celery(settings)))
        actor = Actor("json-logs")
        gist = service.start(factory.create_ranking_config(markets=12, top_k=3), actor)
        done = wait_for_status(service, gist.id, actor, ["COMPLETED"], timeout=90)
    finally:
        json_worker.stop()
    lines = json_worker.log_path.read_text().splitlines()
    assert not [line for line in lines if TEXT_LINE.match(line)], "text log lines in json mode"
    records = [json.loads(line) for line in lines if line.startswith("{")]
    commits = [r for r in records if r.get("analysis") == gist.id and r.get("event") == "commit"]
    assert sorted(r["seq"] for r in commits) == list(range(done.seq + 1))
    chain = runtime.store.chain(gist.id)
    assert all(r["chain"] == chain[:8] for r in commits)
    assert {r["task"] for r in commits} == {"marketrank.init", "marketrank.rank_step"}
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
