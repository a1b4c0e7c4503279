"""The Lua scripts (analysis/db/scripts/) against their declarations, and each on a real Redis:
every body reads its KEYS and ARGV by the names the declaration generates (never by number),
every code a script returns is in its answer enum (and every enum member can be returned), the
gist's fields are the one schema, and the rules written once (stuck, control expired) behave as
/stuck and the watchdog need."""

import importlib
import pkgutil
import re
from enum import StrEnum

import pytest

import analysis.db.scripts
from analysis.db.script import Script, UnknownAnswer
from analysis.db.scripts import controls, steps, watch
from analysis.db.scripts.prologue import PROLOGUE
from analysis.decisions import PAUSE_DECISIONS, Decision, decisions
from analysis.models import GistField, Status
from tests.helpers import noop_config


def script_modules() -> list:
    """Every module of analysis/db/scripts/, found on disk (a new one is checked too)."""
    package = analysis.db.scripts
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def declared_in(module) -> list[Script]:
    return [value for value in vars(module).values() if isinstance(value, Script)]


ALL_SCRIPTS = [script for module in script_modules() for script in declared_in(module)]
INDEXED_BY_NUMBER = re.compile(r"\b(KEYS|ARGV)\s*\[")


def test_the_scripts_are_found_and_each_module_lists_its_own():
    """The store binds a module's SCRIPTS: a script left out of it would fail only when called."""
    assert len(ALL_SCRIPTS) >= 26 and "COMMIT_STEP" in {s.name for s in ALL_SCRIPTS}
    for module in script_modules():
        assert set(declared_in(module)) == set(getattr(module, "SCRIPTS", ())), module.__name__


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda s: s.name)
def test_no_body_reads_keys_or_argv_by_number(script):
    assert not INDEXED_BY_NUMBER.search(script.body), f"{script.name} indexes KEYS/ARGV by number"
    assert not INDEXED_BY_NUMBER.search(script.prologue)
    for name in (n.rstrip("*") for n in script.keys + script.argv):
        assert re.search(rf"\b{name}\b", script.body), f"{script.name} never reads {name}"


def test_no_declared_name_is_hidden_by_a_function_of_the_prologue():
    functions = set(re.findall(r"local function (\w+)", PROLOGUE))
    assert {"is_final", "announce", "stuck_rule"} <= functions
    for script in ALL_SCRIPTS:
        if script.prologue:
            assert not functions & {n.rstrip("*") for n in script.keys + script.argv}, script.name


class Echo(StrEnum):
    OK = "ok"


ECHO = Script(
    "ECHO",
    answers=Echo,
    keys=("first", "second", "rest_keys*"),
    argv=("number", "rest_args*"),
    body="""
return {'ok', first, second, number, table.concat(rest_keys, ','), table.concat(rest_args, ',')}
""",
)


def test_the_generated_preamble_hands_the_body_each_key_and_argument_by_name(runtime):
    """A name ending in '*' is the rest of KEYS or ARGV as a list, empty when nothing is left."""
    echo = ECHO.bind(runtime.redis)
    answer = echo(first="k1", second="k2", rest_keys=["k3", "k4"], number=7, rest_args=["a", "b"])
    assert answer.values == ["k1", "k2", "7", "k3,k4", "a,b"]
    assert echo(first="k1", second="k2", rest_keys=[], number=7, rest_args=[]).values == [
        "k1",
        "k2",
        "7",
        "",
        "",
    ]


@pytest.mark.parametrize("name", ["end", "table", "spent-tokens", "1st"])
def test_a_name_that_cannot_be_a_lua_local_is_refused_at_declaration(name):
    with pytest.raises(ValueError, match="cannot name a Lua local"):
        Script("BAD", answers=Echo, keys=(name,), argv=(), body="return {'ok'}")


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda s: s.name)
def test_every_code_a_script_returns_is_in_its_answer_enum_and_each_member_is_returned(script):
    returned = set(re.findall(r"return \{'(\w+)'", script.body))
    assert returned <= {member.value for member in script.answers}, script.name
    for member in script.answers:  # returned literally, or through a variable set to it
        assert f"'{member.value}'" in script.body + script.prologue, (
            f"{script.name} never answers {member.value}"
        )


def gist_fields_named(source: str) -> set[str]:
    """The quoted field names of every HSET/HGET/HMGET/HINCRBY on the gist key in `source`."""
    fields = set()
    calls = r"redis\.call\('(HSET|HGET|HMGET|HINCRBY)', gist,(.*?)\)\n"
    for call in re.finditer(calls, source, re.S):
        command, arguments = call.group(1), split_top_level(call.group(2))
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
    on_the_gist = [s for s in ALL_SCRIPTS if "gist" in s.keys]
    assert len(on_the_gist) >= 14, "the scripts that name the gist"
    named = gist_fields_named(PROLOGUE)
    for script in on_the_gist:
        named |= gist_fields_named(script.body)
    assert named <= {field.value for field in GistField}, named - {f.value for f in GistField}
    assert {"status", "halt", "kicked_at", "last_progress_at"} <= named  # the reader found them


def test_create_writes_exactly_the_fields_of_the_schema(runtime, local_service, actor):
    gist = local_service.start(noop_config(2), actor)
    fields = {name.decode() for name in runtime.redis.hkeys(runtime.keys.gist(gist.id))}
    assert fields == {field.value for field in GistField}


def test_an_answer_the_declaration_does_not_list_is_an_error_not_a_message():
    with pytest.raises(UnknownAnswer, match="PAUSE answered 'busy'"):
        controls.PAUSE.answer([b"busy"])
    assert controls.PAUSE.answer([b"noop", b"PAUSED"]).code is controls.Pause.NOOP


def test_keys_and_argv_are_passed_by_name_and_each_exactly_once():
    keys, args = steps.ADD_SPEND.arguments({"gist": "g", "metrics": "m", "spent": ["calls", 2]})
    assert (keys, args) == (["g", "m"], ["calls", 2])
    with pytest.raises(TypeError, match="missing \\['lease_ms'\\], unexpected \\['lease_s'\\]"):
        steps.HEARTBEAT.arguments({"lease": "l", "attempt": "a", "lease_s": 3})


def test_every_answer_of_an_action_has_a_decision_checked_at_import():
    assert set(PAUSE_DECISIONS) == set(controls.Pause)
    with pytest.raises(TypeError, match="no decision for"):
        decisions(controls.Resume, {controls.Resume.ENQUEUE: Decision(True, "Resumed.", enqueue=True)})


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
    assert store.stuck_check(gist.id, now=created + grace / 2).code == watch.StuckCheck.RECENT
    assert store.stuck_check(gist.id, now=created + grace).code == watch.StuckCheck.STUCK
    kicked_at = created + grace
    assert store.watchdog_check(gist.id, now=kicked_at).code == watch.WatchdogCheck.KICK
    assert store.stuck_check(gist.id, now=kicked_at + grace / 2).code == watch.StuckCheck.RECENT
    local_service.clock = lambda: kicked_at + grace / 2
    assert gist.id not in {g.id for g in local_service.stuck()}
    local_service.clock = lambda: kicked_at + grace
    assert gist.id in {g.id for g in local_service.stuck()}


def test_a_next_step_waiting_in_the_broker_is_queued_for_both_stuck_and_the_watchdog(
    runtime, local_service, actor
):
    """The one rule reads the broker's pending deliveries: the next step (current chain, seq + 1)
    waiting there is 'queued', never stuck nor kicked; another step of the chain does not count."""
    store, grace = runtime.store, runtime.settings.watchdog_grace_s
    gist = local_service.start(noop_config(2), actor)  # never run: its INIT (seq 0) is "pending"
    now = store.load(gist.id).last_progress_at + grace
    chain = store.chain(gist.id)
    waiting, other = [f"{chain}:0"], [f"{chain}:1", "old-chain:0"]
    assert store.stuck_check(gist.id, now=now, pending=waiting).code == watch.StuckCheck.QUEUED
    assert store.stuck_check(gist.id, now=now, pending=other).code == watch.StuckCheck.STUCK
    assert store.watchdog_check(gist.id, now=now, pending=waiting).code == watch.WatchdogCheck.QUEUED
    assert store.load(gist.id).watchdog_attempts == 0  # queued: nothing counted, nothing kicked
    local_service.clock = lambda: now
    local_service.pending_steps = lambda: {gist.id: waiting}
    assert gist.id not in {g.id for g in local_service.stuck()}
    local_service.pending_steps = lambda: {gist.id: other}
    assert gist.id in {g.id for g in local_service.stuck()}
    assert store.watchdog_check(gist.id, now=now, pending=other).code == watch.WatchdogCheck.KICK


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
    assert store.load(gist.id).halt == "user"
    assert gist.id not in {g.id for g in local_service.stuck()}


@pytest.mark.parametrize("who", ["begin_step", "watchdog"])
def test_a_lost_control_key_parks_the_analysis_the_same_way_for_both_scripts(
    who, runtime, local_service, actor
):
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
    assert (parked.status, parked.reason, parked.halt) == (
        Status.PAUSED,
        "control expired",
        "control_expired",
    )
    assert store.stuck_check(gist.id, now=5.0).code == watch.StuckCheck.HALTED
