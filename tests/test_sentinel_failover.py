"""Redis failover through Sentinel: the primary is SIGKILLed with analyses mid-run; Sentinel
promotes the replica and the workers, beat and the watchdog carry on there by themselves."""

import pytest

from tests.helpers import assert_history_is_one_clean_chain
from tests.sentinel_cluster import SentinelStack, commits_in_logs, run_failover
from tests.stack import FAST_TIMINGS


@pytest.mark.e2e
def test_analyses_mid_run_complete_after_the_primary_dies_and_no_step_commits_twice():
    stack = SentinelStack(FAST_TIMINGS, name="sentinel")
    try:
        stack.start_worker(1)
        stack.start_beat()
        # 40 steps each: the kill comes at step 10, and no step commits until the promotion, so
        # the analyses are mid-run through the whole switch (bench/sentinel_bench.py runs longer).
        figures, ids = run_failover(stack, steps=40)
        store = stack.runtime.store
        for analysis_id in ids:
            gist = store.load(analysis_id)
            assert_history_is_one_clean_chain(store.history(analysis_id), gist.seq)
        # A commit the replica never received is run again after the switch, once; none more.
        assert all(n <= 2 for (aid, _), n in commits_in_logs(stack).items() if aid in ids)
        assert figures.next_commit_s <= 30, figures
        assert stack.beat is not None and stack.beat.alive  # beat rode out the switch
        print(figures)
    finally:
        stack.close()


def test_a_mistyped_sentinel_list_is_refused_in_one_line_naming_the_entry():
    from pydantic import ValidationError

    from analysis.settings import Settings, settings_problem

    with pytest.raises(ValidationError) as refused:
        Settings(redis_sentinels="10.0.0.1:26379,10.0.0.2")
    assert settings_problem(refused.value) == (
        "bad setting REDIS_SENTINELS=10.0.0.1:26379,10.0.0.2: REDIS_SENTINELS entry '10.0.0.2' is "
        "not host:port (e.g. 10.0.0.1:26379,10.0.0.2:26379)"
    )


def test_the_cli_with_no_sentinel_answering_says_so_in_one_line_and_exits():
    from tests.cli_runner import marketrank
    from tests.servers import free_port

    dead = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    result = marketrank("list", REDIS_SENTINELS=dead, REDIS_SENTINEL_MASTER="mymaster")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach Redis at redis://mymaster@sentinels({dead}) (no sentinel names "
        "a primary 'mymaster'); start the stack with `make run`, or set REDIS_URL to a running Redis"
    ]


@pytest.mark.e2e
def test_a_start_and_a_pause_wait_for_the_replica_and_survive_the_primary_dying_right_after(actor, caplog):
    import asyncio
    import logging
    import os
    import signal

    from analysis.engine.runtime import Runtime
    from analysis.models import Status
    from analysis.service import AnalysisService
    from analysis.settings import Settings
    from tests.helpers import QueueDispatcher, noop_config
    from tests.sentinel_cluster import MASTER, SentinelCluster

    cluster = SentinelCluster()
    try:
        settings = Settings(
            redis_url="redis://127.0.0.1:1/0",
            redis_sentinels=cluster.addresses,
            redis_sentinel_master=MASTER,
            redis_wait_ms=300,
        )
        runtime = Runtime(settings)
        service = AnalysisService(runtime.store, QueueDispatcher())
        caplog.set_level(logging.WARNING, logger="analysis.db.replication")
        os.kill(cluster.replica.process.pid, signal.SIGSTOP)  # the replica falls behind
        try:
            unconfirmed = service.start(noop_config(3), actor)
        finally:
            os.kill(cluster.replica.process.pid, signal.SIGCONT)
        warnings = [record.getMessage() for record in caplog.records]
        assert len(warnings) == 1, warnings  # the operator is told this start may not survive
        assert warnings[0].startswith(
            f"[{unconfirmed.id}] start is on the primary but no replica confirmed it within 300 ms ("
        )
        assert warnings[0].endswith("a failover now would lose it")
        caplog.clear()
        # A pause (any control the trader is answered for) waits for the replica the same way.
        os.kill(cluster.replica.process.pid, signal.SIGSTOP)
        try:
            assert service.pause(unconfirmed.id, actor).changed
        finally:
            os.kill(cluster.replica.process.pid, signal.SIGCONT)
        warnings = [record.getMessage() for record in caplog.records]
        assert len(warnings) == 1 and warnings[0].startswith(
            f"[{unconfirmed.id}] pause is on the primary but no replica confirmed it within 300 ms ("
        ), warnings
        caplog.clear()
        confirmed = service.start(noop_config(3), actor)
        assert service.pause(confirmed.id, actor).changed
        assert caplog.records == []  # the replica confirmed both: no warning
        cluster.kill_primary()
        cluster.wait_promoted()
        after = service.get(confirmed.id, actor)  # on the promoted replica, paused as answered
        assert (after.id, after.status) == (confirmed.id, Status.PAUSED)
        runtime.redis.close()

        async def bot_reads_the_gist() -> dict:  # the bot's asyncio client finds the new primary too
            from analysis.db.connect import async_redis_client

            client = async_redis_client(settings, decode_responses=True)
            try:
                return await client.hgetall(runtime.keys.gist(confirmed.id))
            finally:
                await client.aclose()

        assert asyncio.run(bot_reads_the_gist())["owner"] == actor.user_id
    finally:
        cluster.cleanup()
