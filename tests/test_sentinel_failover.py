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
        figures, ids = run_failover(stack)
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
