"""`make run`'s main job: with no Redis reachable it starts one, starts the worker and beat, runs
a demo analysis end to end and prints the ranking."""

import os
import subprocess
import sys

from tests.servers import ROOT, free_port


def test_make_run_starts_its_own_redis_and_prints_a_demo_ranking(tmp_path):
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "MARKETRANK_VAR_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "tasks.run_local", "--once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting redis-server" in done.stdout
    assert "COMPLETED" in done.stdout and "DEMO DATA" in done.stdout
    table = done.stdout.split("rank  symbol")[1].strip().splitlines()[1:]
    assert [row.split()[0] for row in table] == [str(i) for i in range(1, 11)]
    assert all(row.split()[1].endswith("/USDT") for row in table)
    assert (tmp_path / "appendonly.aof").exists() or (tmp_path / "appendonlydir").is_dir()
