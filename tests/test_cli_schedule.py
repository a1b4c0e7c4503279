"""`marketrank schedule add|list|remove` as an operator runs it (subprocesses, the test Redis)."""

import json

from tests.helpers import redis_snapshot
from tests.test_cli import marketrank


def test_add_list_remove_and_refusals_that_write_nothing(runtime):
    added = marketrank("schedule", "add", "--every", "4h", "--markets", "5", "--top", "2",
                       "--owner", "cli-sched")
    assert added.returncode == 0, added.stderr
    schedule_id = added.stdout.splitlines()[-1]
    assert len(schedule_id) == 8 and schedule_id.isalnum()
    assert "every 4h (UTC): 5 markets · 1h · score · top 2" in added.stdout

    listed = json.loads(marketrank("schedule", "list", "--json", "--owner", "cli-sched").stdout)
    assert [(s["id"], s["every"], s["owner"], s["runs"], s["last_analysis"]) for s in listed] == \
        [(schedule_id, "4h", "cli-sched", 0, None)]
    assert listed[0]["next_run_at"] is not None  # an interval's first run is due at once
    table = marketrank("schedule", "list").stdout.splitlines()
    assert table[0].split() == ["id", "every", "owner", "next", "run", "runs", "last", "analysis"]
    assert any(line.startswith(schedule_id) and "cli-sched" in line and "UTC" in line for line in table)

    before = redis_snapshot(runtime.redis)
    for args, message in [(["--every", "10s"], "too often"), (["--every", "cron=61 * * * *"], "outside 0-59"),
                          (["--every", "1h", "--markets", "999"], "999 markets is too many"),
                          (["--every", "1h", "--strategy", "nope"], "unknown strategy 'nope'")]:
        refused = marketrank("schedule", "add", *args)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert marketrank("schedule", "remove", "nosuchid").returncode == 2
    assert redis_snapshot(runtime.redis) == before

    removed = marketrank("schedule", "remove", schedule_id)
    assert removed.returncode == 0 and f"Removed schedule {schedule_id}" in removed.stdout
    assert json.loads(marketrank("schedule", "list", "--json", "--owner", "cli-sched").stdout) == []
