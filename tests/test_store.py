"""The analysis store (analysis/engine/store.py) on a real Redis: what it reads back is what the
scripts wrote, indexes are newest first and bounded, the per-owner limit holds, the failures list
is capped, and every key it writes is one `Keys` names."""

import uuid

import pytest

from analysis.db.keys import Keys
from analysis.db.scripts.creation import Create
from analysis.engine.store import AnalysisStore
from analysis.models import HistoryEntry, Status, StepOutcome
from tests.helpers import noop_config


@pytest.fixture
def store(runtime):
    """A store under a key prefix of its own, so its indexes hold only this test's analyses."""
    prefix = f"store-{uuid.uuid4().hex[:8]}:"
    settings = runtime.settings.model_copy(update={"key_prefix": prefix, "max_active_per_user": 2})
    yield AnalysisStore(runtime.redis, settings)
    for key in runtime.redis.scan_iter(f"{prefix}*"):
        runtime.redis.delete(key)


def create(store, analysis_id, owner="alice", now=100.0, steps=2):
    return store.create(
        analysis_id, owner, noop_config(steps), chain=f"chain-{analysis_id}", demo=True, model="", now=now
    )


def test_a_created_analysis_reads_back_as_written(store):
    assert create(store, "aaaa000001").code == Create.OK
    gist = store.load("aaaa000001")
    assert (gist.id, gist.owner, gist.status, gist.seq, gist.version) == (
        "aaaa000001",
        "alice",
        Status.PENDING,
        -1,
        1,
    )
    assert gist.config == noop_config(2) and gist.demo and gist.target == 0.8
    assert (gist.created_at, gist.last_progress_at, gist.halt) == (100.0, 100.0, "")
    assert store.chain("aaaa000001") == "chain-aaaa000001"
    assert store.lease_holder("aaaa000001") is None and store.history("aaaa000001") == []
    assert store.load("nosuch0001") is None and store.chain("nosuch0001") is None


def test_the_same_id_is_never_created_twice(store):
    assert create(store, "aaaa000002").code == Create.OK
    assert create(store, "aaaa000002", owner="bob").code == Create.EXISTS
    assert store.load("aaaa000002").owner == "alice"


def test_indexes_are_newest_first_and_bounded(store):
    for i, owner in enumerate(["alice", "bob", "alice"]):
        create(store, f"bbbb00000{i}", owner=owner, now=100.0 + i)
    assert store.ids_of_owner("alice") == ["bbbb000002", "bbbb000000"]
    assert store.ids_of_owner("alice", limit=1) == ["bbbb000002"]
    assert store.all_ids() == ["bbbb000002", "bbbb000001", "bbbb000000"]


def test_an_owner_beyond_the_limit_of_active_analyses_is_refused_until_one_ends(store):
    assert create(store, "cccc000001").code == Create.OK
    assert create(store, "cccc000002").code == Create.OK
    refused = create(store, "cccc000003")
    assert (refused.code, refused.values) == (Create.LIMIT, ["2"])
    assert store.load("cccc000003") is None  # nothing half-written
    assert store.cancel("cccc000001", "alice", now=101.0).code == "ok"
    assert create(store, "cccc000003").code == Create.OK


def test_a_committed_step_reads_back_in_the_gist_and_the_history(store):
    create(store, "dddd000001")
    _, begun = store.begin_step("dddd000001", "chain-dddd000001", 0, "att-1", now=101.0)
    assert begun is not None and begun.owner == "alice" and begun.config == noop_config(2)
    assert store.lease_holder("dddd000001") == "att-1"
    entry = HistoryEntry(0, "chain-dddd000001", "att-1", "w1", 101.0, 102.0)
    outcome = StepOutcome(
        state={"done_steps": 0}, progress=0.25, confidence=0.0, done=False, result=[], note=""
    )
    answer = store.commit_step(
        "dddd000001", "alice", "chain-dddd000001", 0, "att-1", outcome, entry, target_used=0.8, now=102.0
    )
    assert answer.code == "continue"
    gist = store.load("dddd000001")
    assert (gist.status, gist.seq, gist.progress, gist.state) == (Status.RUNNING, 0, 0.25, {"done_steps": 0})
    assert gist.last_progress_at == 102.0 and gist.version == 2
    assert store.history("dddd000001") == [entry]
    assert store.lease_holder("dddd000001") is None


def test_the_failures_list_keeps_the_latest_hundred_newest_first(store):
    for i in range(105):
        store.record_failure(f"eeee{i:06d}", i, f"reason {i}", now=float(i))
    failures = store.recent_failures(limit=200)
    assert len(failures) == 100
    assert failures[0] == {"id": "eeee000104", "seq": 104, "reason": "reason 104", "at": 104.0}
    assert failures[-1]["id"] == "eeee000005"


def test_every_key_the_store_writes_is_one_keys_names(store, runtime):
    create(store, "ffff000001")
    store.begin_step("ffff000001", "chain-ffff000001", 0, "att", now=101.0)
    store.save_snapshot("ffff000001", "att", {"BTC/USDT": b"x"})
    store.record_failure("ffff000001", 0, "why", now=102.0)
    keys = Keys(store.settings.key_prefix)
    named = {
        keys.gist("ffff000001"),
        keys.control("ffff000001"),
        keys.lease("ffff000001"),
        keys.candles("ffff000001"),
        keys.owner("alice"),
        keys.active("alice"),
        keys.analyses(),
        keys.failures(),
        keys.live(),
    }
    written = {key.decode() for key in runtime.redis.scan_iter(f"{keys.prefix}*")}
    assert written - {keys.events()} == named
