"""`marketrank schedule add|list|remove|resume` as an operator runs it (in this process, the test Redis)."""

import json
import random
import re

from analysis.engine.runtime import Runtime
from analysis.settings import Settings
from tasks.schedule_tasks import schedule_service
from tests.cli_runner import marketrank
from tests.helpers import redis_snapshot


def test_add_list_remove_and_refusals_that_write_nothing(runtime):
    added = marketrank(
        "schedule", "add", "--every", "4h", "--markets", "5", "--top", "2", "--owner", "cli-sched"
    )
    assert added.returncode == 0, added.stderr
    schedule_id = added.stdout.splitlines()[-1]
    assert len(schedule_id) == 8 and schedule_id.isalnum()
    assert "every 4h (UTC): 5 markets · 1h · score · top 2" in added.stdout

    listed = json.loads(marketrank("schedule", "list", "--json", "--owner", "cli-sched").stdout)
    assert [(s["id"], s["every"], s["owner"], s["runs"], s["last_analysis"]) for s in listed] == [
        (schedule_id, "4h", "cli-sched", 0, None)
    ]
    assert listed[0]["next_run_at"] is not None  # an interval's first run is due at once
    table = marketrank("schedule", "list").stdout.splitlines()
    assert table[0].split() == ["id", "every", "owner", "next", "run", "runs", "last", "analysis"]
    assert any(line.startswith(schedule_id) and "cli-sched" in line and "UTC" in line for line in table)

    before = redis_snapshot(runtime.redis)
    for args, message in [
        (["--every", "10s"], "too often"),
        (["--every", "cron=61 * * * *"], "outside 0-59"),
        (["--every", "1h", "--markets", "999"], "999 markets is too many"),
        (["--every", "1h", "--strategy", "nope"], "unknown strategy 'nope'"),
    ]:
        refused = marketrank("schedule", "add", *args)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert marketrank("schedule", "remove", "nosuchid").returncode == 2
    assert redis_snapshot(runtime.redis) == before

    removed = marketrank("schedule", "remove", schedule_id)
    assert removed.returncode == 0 and f"Removed schedule {schedule_id}" in removed.stdout
    assert json.loads(marketrank("schedule", "list", "--json", "--owner", "cli-sched").stdout) == []


def test_resume_a_paused_schedule_with_the_documented_exit_codes(runtime):
    owner = str(random.randrange(10**8, 10**9))  # a Telegram user id: ALLOWED_USER_IDS applies
    added = marketrank("schedule", "add", "--every", "4h", "--markets", "5", "--owner", owner)
    schedule_id = added.stdout.splitlines()[-1]
    already = marketrank("schedule", "resume", schedule_id)
    assert already.returncode == 0 and f"Schedule {schedule_id} is already active." in already.stdout
    # Paused as a worker pauses it: a firing after the owner left ALLOWED_USER_IDS.
    worker = schedule_service(Runtime(Settings(allowed_user_ids=[1])))
    assert worker.fire(schedule_id, fire_id=f"cli-{schedule_id}").code == "paused"

    refused = marketrank("schedule", "resume", schedule_id, ALLOWED_USER_IDS="1")
    assert refused.returncode == 1, refused.stderr
    assert f"stays paused: its owner {owner} is not allowed to use the bot" in refused.stdout
    assert marketrank("schedule", "resume", "nosuchid").returncode == 2
    resumed = marketrank("schedule", "resume", schedule_id)
    assert resumed.returncode == 0, resumed.stderr
    assert re.fullmatch(rf"Resumed schedule {schedule_id}\. Next run: \S+ \S+ UTC\.\n", resumed.stdout)
    listed = json.loads(marketrank("schedule", "list", "--json", "--owner", owner).stdout)
    assert [(s["state"], s["reason"], s["failures_in_a_row"]) for s in listed] == [("active", "", 0)]
    assert marketrank("schedule", "remove", schedule_id).returncode == 0
