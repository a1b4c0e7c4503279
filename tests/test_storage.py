"""Bounded storage (issue 11): snapshots kept only while an analysis can be refined, indexes
pruned of expired analyses, an hourly quota on starts, and Redis at its memory limit pausing an
analysis with the reason "storage full" (a real redis-server with a small maxmemory)."""

import time

import pytest

from analysis.engine.runtime import Runtime
from analysis.errors import LimitReached
from analysis.models import Status
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings
from tests.helpers import QueueDispatcher, noop_config
from tests.servers import RedisServer


def events_of(runtime, analysis_id):
    rows = runtime.redis.xrange(runtime.keys.events())
    return [
        {k.decode(): v.decode() for k, v in row.items()}
        for _, row in rows
        if row[b"id"].decode() == analysis_id
    ]


def test_a_completed_analysis_keeps_its_snapshot_for_the_refine_window_then_only_its_result(
    runtime, queue, local_service, actor
):
    window = runtime.settings.refine_window_s
    gist = local_service.start(noop_config(2), actor)
    queue.drain(runtime)
    done = local_service.get(gist.id, actor)
    assert done.status == Status.COMPLETED
    candles, key = runtime.keys.candles(gist.id), runtime.keys.gist(gist.id)
    runtime.store.sweep([gist.id], now=done.updated_at + 1)  # the watchdog's next pass
    assert 0 < runtime.redis.ttl(candles) <= window
    assert runtime.redis.ttl(key) > window  # the gist, history and result stay GIST_TTL_S
    assert gist.id not in runtime.store.live_ids()
    runtime.redis.sadd(runtime.keys.live(), gist.id)
    runtime.store.sweep([gist.id], now=done.updated_at + window + 1)  # the window has passed
    assert not runtime.redis.exists(candles)
    assert local_service.get(gist.id, actor).result == done.result
    with pytest.raises(LimitReached, match="finished too long ago to refine"):
        local_service.refine(gist.id, actor)


def test_a_refined_analysis_gets_its_snapshot_back_for_as_long_as_its_gist(
    runtime, queue, local_service, actor
):
    gist = local_service.start(noop_config(2), actor)
    queue.drain(runtime)
    runtime.store.sweep([gist.id], now=time.time())
    assert runtime.redis.ttl(runtime.keys.candles(gist.id)) <= runtime.settings.refine_window_s
    assert local_service.refine(gist.id, actor).changed
    assert gist.id in runtime.store.live_ids()
    assert runtime.redis.ttl(runtime.keys.candles(gist.id)) > runtime.settings.refine_window_s
    assert queue.drain(runtime)[-1] == "completed"


def test_a_cancelled_analysis_drops_its_snapshot_and_leaves_the_live_index(
    runtime, queue, local_service, actor
):
    gist = local_service.start(noop_config(5), actor)
    queue.drain(runtime, limit=2)
    assert runtime.redis.exists(runtime.keys.candles(gist.id))
    local_service.cancel(gist.id, actor)
    assert runtime.store.sweep(runtime.store.live_ids(), now=time.time()) >= 1
    assert not runtime.redis.exists(runtime.keys.candles(gist.id))
    assert gist.id not in runtime.store.live_ids()


def test_expired_analyses_leave_the_owner_and_global_indexes(runtime, queue):
    ttl = runtime.settings.gist_ttl_s
    now = [time.time() - ttl - 60]
    service = AnalysisService(runtime.store, queue, clock=lambda: now[0])
    owner = Actor(f"old-{time.time_ns()}")
    old = service.start(noop_config(1), owner)
    queue.drain(runtime)
    runtime.redis.delete(runtime.keys.gist(old.id))  # its GIST_TTL_S ran out
    now[0] = time.time()
    fresh = service.start(noop_config(1), owner)
    queue.drain(runtime)
    assert runtime.store.ids_of_owner(owner.user_id) == [fresh.id]
    assert 0 < runtime.redis.ttl(runtime.keys.owner(owner.user_id)) <= ttl
    assert old.id in runtime.store.all_ids(limit=10**6)
    runtime.store.sweep([], now=now[0])
    assert old.id not in runtime.store.all_ids(limit=10**6)
    assert fresh.id in runtime.store.all_ids(limit=10**6)


def test_starts_per_hour_are_limited_per_user_with_a_clear_message(redis_url, queue):
    settings = Settings(redis_url=redis_url, max_starts_per_hour=3, max_active_per_user=10)
    runtime = Runtime(settings)
    now = [time.time()]
    service = AnalysisService(runtime.store, queue, clock=lambda: now[0])
    trader, other = Actor(f"q-{time.time_ns()}"), Actor(f"r-{time.time_ns()}")
    for _ in range(3):
        service.cancel(service.start(noop_config(1), trader).id, trader)  # cancelling frees nothing
    before = runtime.redis.zcard(runtime.keys.analyses())
    with pytest.raises(LimitReached) as refused:
        service.start(noop_config(1), trader)
    assert str(refused.value) == (
        "you started 3 analyses in the last hour; the limit is 3 an hour: try again later"
    )
    assert runtime.redis.zcard(runtime.keys.analyses()) == before  # nothing half-written
    assert service.start(noop_config(1), other).owner == other.user_id  # per user
    now[0] += 3601  # an hour later
    assert service.start(noop_config(1), trader).status == Status.PENDING


@pytest.fixture
def small_redis():
    server = RedisServer(maxmemory="4mb").start()
    yield server
    server.cleanup()


def fill(client) -> int:
    """Write junk, in smaller and smaller pieces, until Redis refuses even a few bytes
    (noeviction): answers how many keys were written."""
    import redis

    written = 0
    for chunk in (64 * 1024, 1024, 16):
        while written < 100_000:
            try:
                client.set(f"junk:{written}", b"x" * chunk)
                written += 1
            except redis.OutOfMemoryError:
                break
    assert (
        client.info("memory")["used_memory"] >= int(client.config_get("maxmemory")["maxmemory"]) and written
    )
    return written


def test_a_step_redis_has_no_room_for_pauses_its_analysis_with_the_reason_storage_full(small_redis):
    settings = Settings(redis_url=small_redis.url)
    runtime = Runtime(settings)
    queue = QueueDispatcher()
    service = AnalysisService(runtime.store, queue)
    trader = Actor("trader")
    gist = service.start(noop_config(3), trader)
    assert queue.drain(runtime, limit=1) == ["continue"]  # INIT ran and saved its snapshot
    written = fill(runtime.redis)
    assert written > 0
    assert queue.drain(runtime, limit=1) == ["paused"]
    paused = service.get(gist.id, trader)
    assert (paused.status, paused.reason, paused.seq) == (Status.PAUSED, "storage full", 0)
    assert events_of(runtime, gist.id)[-1]["kind"] == "storage_full"  # admins are told
    assert runtime.store.recent_failures()[0]["reason"] == "storage full"
    assert runtime.store.lease_holder(gist.id) is None
    with pytest.raises(LimitReached, match="storage is full"):
        service.start(noop_config(3), Actor("another"))
    runtime.redis.delete(*[f"junk:{i}" for i in range(written)])  # an operator made room
    assert service.resume(gist.id, trader).changed
    assert queue.drain(runtime)[-1] == "completed"
    assert [e.seq for e in runtime.store.history(gist.id)] == [0, 1, 2, 3]


def test_a_user_keeps_at_most_max_finished_per_user_finished_analyses(queue):
    """#19 item 11: a handful of users cannot fill Redis. A start deletes the owner's oldest
    finished analyses beyond MAX_FINISHED_PER_USER, every key of them; what still runs, and other
    users' analyses, stay."""
    runtime = Runtime(Settings(max_finished_per_user=3, max_starts_per_hour=100))
    service = AnalysisService(runtime.store, queue)
    alice, bob = Actor(f"alice-{time.time_ns()}"), Actor(f"bob-{time.time_ns()}")
    bobs = service.start(noop_config(1), bob)
    queue.drain(runtime)
    waiting = service.start(noop_config(1), alice)  # started first, still to run: never pruned
    queue.queue.clear()
    done = []
    for _ in range(5):
        done.append(service.start(noop_config(1), alice).id)
        queue.drain(runtime)
    assert [runtime.store.load(i) is not None for i in done] == [False, True, True, True, True]  # 3 + 1 since
    newest = service.start(noop_config(1), alice)
    queue.queue.clear()
    for gone in done[:2]:  # every key of its own; its pick record keeps its own retention (#21)
        assert [k for k in runtime.redis.keys(f"*{gone}*") if b":track:" not in k] == [], gone
        assert runtime.redis.exists(runtime.keys.track_record(f"{gone}:1"))
    assert [g.id for g in service.list(alice)] == [newest.id, *reversed(done[2:]), waiting.id]
    assert runtime.store.load(bobs.id).status == Status.COMPLETED
    assert runtime.store.load(waiting.id).status == Status.PENDING
