"""The Lua scripts (analysis/db/lua.py) against their declarations, and each on a real Redis:
the header comment names the declared KEYS and ARGV in order, every code a script returns is in
its answer enum (and every enum member can be returned), the gist's fields are the one schema,
and the rules written once (stuck, control expired) behave as /stuck and the watchdog need."""

import re

import pytest

from analysis.db import lua
from analysis.db.script import Script, UnknownAnswer
from analysis.models import GistField, Status
from analysis.service import PAUSE_DECISIONS, Decision, decisions
from tests.helpers import noop_config

HEADER = re.compile(r"(KEYS|ARGV)\[(\d+)(\.\.)?\] (\w+)")


def own_source(script: Script) -> str:
    """The script's own text: its source without the shared prologue."""
    return script.source.replace(lua._PROLOGUE, "\n")


def header_names(script: Script) -> tuple[list[str], list[str]]:
    header = [line for line in script.source.splitlines() if line.startswith("-- ")]
    keys: list[str] = []
    argv: list[str] = []
    for line in header:
        for kind, index, rest, name in HEADER.findall(line):
            names = keys if kind == "KEYS" else argv
            assert int(index) == len(names) + 1, f"{script.name}: {kind}[{index}] out of order"
            names.append(name + ("*" if rest else ""))
    return keys, argv


@pytest.mark.parametrize("script", lua.ALL_SCRIPTS, ids=lambda s: s.name)
def test_the_header_comment_names_the_declared_keys_and_argv_in_order(script):
    assert header_names(script) == (list(script.keys), list(script.argv))


@pytest.mark.parametrize("script", lua.ALL_SCRIPTS, ids=lambda s: s.name)
def test_every_code_a_script_returns_is_in_its_answer_enum_and_each_member_is_returned(script):
    body = own_source(script)
    returned = set(re.findall(r"return \{'(\w+)'", body))
    assert returned <= {member.value for member in script.answers}, script.name
    for member in script.answers:  # returned literally, or through a variable set to it
        assert f"'{member.value}'" in script.source, f"{script.name} never answers {member.value}"


def gist_fields_named(source: str) -> set[str]:
    """The quoted field names of every HSET/HGET/HMGET/HINCRBY on the gist key in `source`."""
    fields = set()
    for call in re.finditer(r"redis\.call\('(HSET|HGET|HMGET|HINCRBY)', (KEYS\[2\]|gist),(.*?)\)\n",
                            source, re.S):
        command, arguments = call.group(1), split_top_level(call.group(3))
        named = arguments[0::2] if command == "HSET" else arguments[:1] if command != "HMGET" else arguments
        fields |= {a.strip().strip("'") for a in named if re.fullmatch(r"\s*'\w+'\s*", a)}
    return fields


def split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


def test_the_gist_fields_the_scripts_read_and_write_are_the_one_schema():
    gist_first = [s for s in lua.SCRIPTS if s.keys[:2] in (("control", "gist"),)]
    assert gist_first, "the scripts that name the gist second"
    named = gist_fields_named(lua._PROLOGUE)
    for script in gist_first:
        named |= gist_fields_named(own_source(script))
    assert named <= {field.value for field in GistField}, named - {f.value for f in GistField}
    assert {"status", "halt", "kicked_at", "last_progress_at"} <= named  # the reader found them


def test_create_writes_exactly_the_fields_of_the_schema(runtime, local_service, actor):
    gist = local_service.start(noop_config(2), actor)
    fields = {name.decode() for name in runtime.redis.hkeys(runtime.keys.gist(gist.id))}
    assert fields == {field.value for field in GistField}


def test_an_answer_the_declaration_does_not_list_is_an_error_not_a_message():
    with pytest.raises(UnknownAnswer, match="PAUSE answered 'busy'"):
        lua.PAUSE.answer([b"busy"])
    assert lua.PAUSE.answer([b"noop", b"PAUSED"]).code is lua.Pause.NOOP


def test_keys_and_argv_are_passed_by_name_and_each_exactly_once():
    keys, args = lua.ADD_SPEND.arguments({"gist": "g", "spent": ["calls", 2]})
    assert (keys, args) == (["g"], ["calls", 2])
    with pytest.raises(TypeError, match="missing \\['lease_ms'\\], unexpected \\['lease_s'\\]"):
        lua.HEARTBEAT.arguments({"lease": "l", "attempt": "a", "lease_s": 3})


def test_every_answer_of_an_action_has_a_decision_checked_at_import():
    assert set(PAUSE_DECISIONS) == set(lua.Pause)
    with pytest.raises(TypeError, match="no decision for"):
        decisions(lua.Resume, {lua.Resume.ENQUEUE: Decision(True, "Resumed.", enqueue=True)})


# --- the scripts on a real Redis ----------------------------------------------------------------
def test_heartbeat_renews_only_the_holders_lease(runtime, local_service, actor):
    store = runtime.store
    gist = local_service.start(noop_config(2), actor)
    _, begun = store.begin_step(gist.id, store.chain(gist.id), 0, "holder", now=1.0)
    assert begun is not None
    assert store.heartbeat(gist.id, "holder") is True
    assert store.heartbeat(gist.id, "someone-else") is False
    assert store.lease_holder(gist.id) == "holder"


def test_only_the_lease_holder_saves_the_snapshot(runtime, local_service, actor):
    store = runtime.store
    gist = local_service.start(noop_config(2), actor)
    store.begin_step(gist.id, store.chain(gist.id), 0, "holder", now=1.0)
    assert store.save_snapshot(gist.id, "holder", {"BTC/USDT": b"new"}) is True
    assert store.save_snapshot(gist.id, "fenced", {"BTC/USDT": b"old"}) is False
    assert runtime.redis.hget(runtime.keys.candles(gist.id), "BTC/USDT") == b"new"


def test_spend_is_added_to_a_gist_and_never_recreates_an_expired_one(runtime, local_service, actor):
    store = runtime.store
    gist = local_service.start(noop_config(2), actor)
    assert store.add_spend(gist.id, {"calls": 2, "retries": 0})
    assert store.add_spend(gist.id, {"calls": 1})
    assert store.load(gist.id).spend == {"calls": 3}
    assert store.add_spend("gone123456", {"calls": 1}) is False
    assert not runtime.redis.exists(runtime.keys.gist("gone123456"))


def test_a_kick_counts_as_activity_for_the_one_stuck_rule(runtime, local_service, actor):
    """/stuck and the watchdog share one rule: an analysis the watchdog has just kicked is not
    listed as stuck until the grace period has passed again."""
    store, grace = runtime.store, runtime.settings.watchdog_grace_s
    gist = local_service.start(noop_config(2), actor)  # never run: nothing takes its step
    created = store.load(gist.id).last_progress_at
    assert store.stuck_check(gist.id, now=created + grace / 2).code == lua.StuckCheck.RECENT
    assert store.stuck_check(gist.id, now=created + grace).code == lua.StuckCheck.STUCK
    kicked_at = created + grace
    assert store.watchdog_check(gist.id, now=kicked_at).code == lua.WatchdogCheck.KICK
    assert store.stuck_check(gist.id, now=kicked_at + grace / 2).code == lua.StuckCheck.RECENT
    local_service.clock = lambda: kicked_at + grace / 2
    assert gist.id not in {g.id for g in local_service.stuck()}
    local_service.clock = lambda: kicked_at + grace
    assert gist.id in {g.id for g in local_service.stuck()}


def test_a_next_step_waiting_in_the_broker_is_queued_for_both_stuck_and_the_watchdog(
        runtime, local_service, actor):
    """The one rule reads the broker's pending deliveries: the next step (current chain, seq + 1)
    waiting there is 'queued', never stuck nor kicked; another step of the chain does not count."""
    store, grace = runtime.store, runtime.settings.watchdog_grace_s
    gist = local_service.start(noop_config(2), actor)  # never run: its INIT (seq 0) is "pending"
    now = store.load(gist.id).last_progress_at + grace
    chain = store.chain(gist.id)
    waiting, other = [f"{chain}:0"], [f"{chain}:1", "old-chain:0"]
    assert store.stuck_check(gist.id, now=now, pending=waiting).code == lua.StuckCheck.QUEUED
    assert store.stuck_check(gist.id, now=now, pending=other).code == lua.StuckCheck.STUCK
    assert store.watchdog_check(gist.id, now=now, pending=waiting).code == lua.WatchdogCheck.QUEUED
    assert store.load(gist.id).watchdog_attempts == 0  # queued: nothing counted, nothing kicked
    local_service.clock = lambda: now
    local_service.pending_steps = lambda: {gist.id: waiting}
    assert gist.id not in {g.id for g in local_service.stuck()}
    local_service.pending_steps = lambda: {gist.id: other}
    assert gist.id in {g.id for g in local_service.stuck()}
    assert store.watchdog_check(gist.id, now=now, pending=other).code == lua.WatchdogCheck.KICK


def test_analyses_the_watchdog_halted_are_found_by_their_halt_field(runtime, local_service, actor):
    store, grace = runtime.store, runtime.settings.watchdog_grace_s
    gist = local_service.start(noop_config(2), actor)
    now = store.load(gist.id).last_progress_at
    for _ in range(runtime.settings.watchdog_max_attempts + 1):
        now += grace
        store.watchdog_check(gist.id, now=now)
    halted = store.load(gist.id)
    assert (halted.status, halted.halt) == (Status.PAUSED, "stuck")
    assert store.stuck_check(gist.id, now=now).values == ["stuck"]
    local_service.clock = lambda: now
    assert gist.id in {g.id for g in local_service.stuck()}
    # A user's own pause is not the watchdog's: resumed and paused again, it is not listed.
    assert local_service.resume(gist.id, actor).changed
    assert local_service.pause(gist.id, actor).changed
    assert store.load(gist.id).halt == ""
    assert gist.id not in {g.id for g in local_service.stuck()}


@pytest.mark.parametrize("who", ["begin_step", "watchdog"])
def test_a_lost_control_key_parks_the_analysis_the_same_way_for_both_scripts(
        who, runtime, local_service, actor):
    store = runtime.store
    gist = local_service.start(noop_config(2), actor)
    chain = store.chain(gist.id)
    runtime.redis.delete(runtime.keys.control(gist.id))
    if who == "begin_step":
        answer, _ = store.begin_step(gist.id, chain, 0, "a", now=5.0)
    else:
        answer = store.watchdog_check(gist.id, now=5.0)
    assert answer.code == "expired"
    parked = store.load(gist.id)
    assert (parked.status, parked.reason, parked.halt) == (Status.PAUSED, "control expired",
                                                           "control_expired")
    assert store.stuck_check(gist.id, now=5.0).code == lua.StuckCheck.HALTED
