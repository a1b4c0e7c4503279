"""The step protocol's scripts: begin a step (take the lease), renew it, save INIT's snapshot,
commit a step, stop one softly, pause on a full Redis, count LLM spend (an analysis's creation:
creation.py).

Every key a script touches is passed in KEYS. The gist's `version` is bumped by every script that
changes the gist, so readers can tell a changed document from an unchanged one; the gist's fields
are `models.GistField`.
"""

from enum import StrEnum

from analysis.db.script import Script
from analysis.db.scripts.prologue import PROLOGUE


class BeginStep(StrEnum):
    OK = "ok"  # + config, state, target, model, owner, result
    MISSING = "missing"
    FINAL = "final"  # + status
    EXPIRED = "expired"  # the control key was gone: parked PAUSED
    PAUSED = "paused"  # control wants the analysis paused ...
    CANCELLED = "cancelled"  # ... cancelled ...
    FAILED = "failed"  # ... or failed
    STALE_CHAIN = "stale_chain"
    DUPLICATE = "duplicate"  # this seq is already committed
    GAP = "gap"  # + the last committed seq
    BUSY = "busy"  # + the live lease's holder
    MAINTENANCE = "maintenance"  # maintenance is on: paused with halt 'maintenance'


BEGIN_STEP = Script(
    "BEGIN_STEP",
    answers=BeginStep,
    prologue=PROLOGUE,
    keys=(
        "control",
        "gist",
        "lease",
        "events",
        "maintenance",  # the maintenance flag: while it exists no step begins
    ),
    argv=(
        "chain",
        "seq",
        "attempt",
        "lease_ms",
        "now",
        "control_ttl_s",
        "events_maxlen",
    ),
    body="""
-- Proceeds only if control says running, the chain is current, seq follows the last committed
-- step and no live lease is held; then takes the lease. Answers ok + the gist fields a step needs.
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
local status = redis.call('HGET', gist, 'status')
if is_final(status) then return {'final', status} end
if redis.call('EXISTS', control) == 0 then
  -- One already paused keeps its reason (a late delivery must not rewrite what the user sees).
  if status == 'RUNNING' or status == 'PENDING' then
    park_expired(gist, events, events_maxlen, now)
  end
  return {'expired'}
end
local wanted, current_chain = unpack(redis.call('HMGET', control, 'wanted', 'chain'))
if wanted == 'paused' then return {'paused'} end
if wanted == 'cancelled' then return {'cancelled'} end
if wanted == 'failed' then return {'failed'} end
if current_chain ~= chain then return {'stale_chain'} end
local committed = tonumber(redis.call('HGET', gist, 'seq'))
if committed >= tonumber(seq) then return {'duplicate'} end
if committed < tonumber(seq) - 1 then return {'gap', tostring(committed)} end
local holder = redis.call('GET', lease)
if holder then return {'busy', holder} end
if redis.call('EXISTS', maintenance) == 1 then
  halt_for_maintenance(control, gist, now)
  announce(gist, events, events_maxlen, redis.call('HGET', gist, 'id'), 'paused', now)
  return {'maintenance'}
end
redis.call('SET', lease, attempt, 'PX', lease_ms)
redis.call('EXPIRE', control, control_ttl_s)
local g = redis.call('HMGET', gist, 'config', 'state', 'target', 'model', 'owner', 'result')
return {'ok', g[1], g[2], g[3], g[4], g[5], g[6]}
""",
)


class Heartbeat(StrEnum):
    OK = "ok"
    LOST_LEASE = "lost_lease"


HEARTBEAT = Script(
    "HEARTBEAT",
    answers=Heartbeat,
    keys=("lease",),
    argv=("attempt", "lease_ms"),
    body="""
-- Renews the lease only for its holder; lost_lease tells a zombie it has been fenced out.
if redis.call('GET', lease) == attempt then
  redis.call('PEXPIRE', lease, lease_ms)
  return {'ok'}
end
return {'lost_lease'}
""",
)


class SaveSnapshot(StrEnum):
    OK = "ok"
    LOST_LEASE = "lost_lease"


SAVE_SNAPSHOT = Script(
    "SAVE_SNAPSHOT",
    answers=SaveSnapshot,
    keys=("lease", "candles"),
    argv=(
        "attempt",
        "ttl_s",
        "blobs*",  # symbol, its candle block refs as JSON, symbol, ...
    ),
    body="""
-- INIT's data snapshot, written only by the lease holder: an INIT fenced out while it read the
-- candles (its lease ran out and the step was redone, or an admin force-resumed) must not
-- replace the snapshot a newer attempt saved, which later steps rank.
if redis.call('GET', lease) ~= attempt then return {'lost_lease'} end
redis.call('DEL', candles)
for i = 1, #blobs, 2 do
  redis.call('HSET', candles, blobs[i], blobs[i + 1])
end
redis.call('EXPIRE', candles, ttl_s)
return {'ok'}
""",
)


class CommitStep(StrEnum):
    CONTINUE = "continue"  # committed; the next step follows
    COMPLETED = "completed"  # committed; the target is reached
    PAUSED = "paused"  # committed; control wants it paused, or maintenance is on
    LOST_LEASE = "lost_lease"
    STALE_CHAIN = "stale_chain"
    STALE_SEQ = "stale_seq"
    FINAL = "final"  # + status (cancelled meanwhile: nothing committed)


COMMIT_STEP = Script(
    "COMMIT_STEP",
    answers=CommitStep,
    prologue=PROLOGUE,
    keys=(
        "control",
        "gist",
        "lease",
        "history",
        "events",
        "active",  # the owner's active analyses
        "maintenance",  # the maintenance flag: while it exists the chain stops here
    ),
    argv=(
        "attempt",
        "chain",
        "seq",
        "state",  # JSON
        "progress",
        "confidence",
        "done",  # 0/1
        "result",  # JSON
        "entry",  # the history entry, JSON
        "target_used",  # the target the step worked toward
        "now",
        "events_maxlen",
        "note",  # shown with the result, '' for none
        "gist_ttl_s",
        "control_ttl_s",
    ),
    body="""
-- Only the lease holder on the current chain commits seq = committed + 1; answers the decision.
if redis.call('GET', lease) ~= attempt then return {'lost_lease'} end
if redis.call('HGET', control, 'chain') ~= chain then return {'stale_chain'} end
local committed = tonumber(redis.call('HGET', gist, 'seq'))
if committed ~= tonumber(seq) - 1 then return {'stale_seq'} end
local status = redis.call('HGET', gist, 'status')
redis.call('DEL', lease)
if is_final(status) then return {'final', status} end
local id = redis.call('HGET', gist, 'id')
redis.call('HSET', gist, 'state', state, 'progress', progress, 'confidence', confidence,
  'seq', seq, 'result', result, 'note', note, 'updated_at', now,
  'last_progress_at', now, 'watchdog_attempts', 0)
redis.call('HINCRBY', gist, 'version', 1)
redis.call('RPUSH', history, entry)
redis.call('EXPIRE', history, gist_ttl_s)
redis.call('EXPIRE', control, control_ttl_s)
local wanted = redis.call('HGET', control, 'wanted')
local target = tonumber(redis.call('HGET', gist, 'target'))
local decision
if done == '1' and target <= tonumber(target_used) + 1e-9 then
  decision = 'completed'
  redis.call('HSET', gist, 'status', 'COMPLETED', 'reason', '', 'halt', '')
  redis.call('SREM', active, id)
elseif wanted == 'paused' then
  decision = 'paused'
  redis.call('HSET', gist, 'status', 'PAUSED')
elseif redis.call('EXISTS', maintenance) == 1 then
  decision = 'paused'
  halt_for_maintenance(control, gist, now)
else
  decision = 'continue'
  redis.call('HSET', gist, 'status', 'RUNNING', 'reason', '', 'halt', '')
end
announce(gist, events, events_maxlen, id, 'step', now)
return {decision}
""",
)


class StepStop(StrEnum):
    OK = "ok"
    LOST_LEASE = "lost_lease"
    STALE_CHAIN = "stale_chain"
    FINAL = "final"


STEP_STOP = Script(
    "STEP_STOP",
    answers=StepStop,
    prologue=PROLOGUE,
    keys=(
        "control",
        "gist",
        "lease",
        "events",
        "active",  # the owner's active analyses
    ),
    argv=(
        "attempt",
        "chain",
        "status",  # PAUSED or FAILED
        "reason",
        "now",
        "events_maxlen",
    ),
    body="""
-- A step that cannot finish ends softly: the analysis is paused (or failed) with a reason and the
-- lease is released. Only the lease holder on the current chain may do this.
if redis.call('GET', lease) ~= attempt then return {'lost_lease'} end
if redis.call('HGET', control, 'chain') ~= chain then return {'stale_chain'} end
redis.call('DEL', lease)
local id = redis.call('HGET', gist, 'id')
if is_final(redis.call('HGET', gist, 'status')) then return {'final'} end
redis.call('HSET', gist, 'status', status, 'reason', reason, 'halt', '', 'updated_at', now)
redis.call('HINCRBY', gist, 'version', 1)
if status == 'FAILED' then
  redis.call('HSET', control, 'wanted', 'failed')
  redis.call('SREM', active, id)
else
  redis.call('HSET', control, 'wanted', 'paused')
end
announce(gist, events, events_maxlen, id, string.lower(status), now)
return {'ok'}
""",
)


class StorageFull(StrEnum):
    OK = "ok"  # paused with the reason 'storage full'; admins are told
    FINAL = "final"  # + status
    STALE_CHAIN = "stale_chain"
    MISSING = "missing"


STORAGE_FULL = Script(
    "STORAGE_FULL",
    answers=StorageFull,
    prologue=PROLOGUE,
    allow_oom=True,
    keys=(
        "control",
        "gist",
        "lease",
        "events",
        "failures",
    ),
    argv=(
        "chain",
        "now",
        "events_maxlen",
        "entry",  # the failure, JSON
    ),
    body="""
-- Redis refused a write of a step (its memory limit, noeviction): pause the analysis with the
-- reason 'storage full', release the lease and tell admins (a 'storage_full' event and a
-- failure entry). Runs even at the memory limit (allow-oom): these few bytes are what lets an
-- operator see why nothing moves. Only on the current chain of an analysis that is not final.
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
local status = redis.call('HGET', gist, 'status')
if is_final(status) then return {'final', status} end
if redis.call('HGET', control, 'chain') ~= chain then return {'stale_chain'} end
redis.call('DEL', lease)
redis.call('HSET', control, 'wanted', 'paused')
redis.call('HSET', gist, 'status', 'PAUSED', 'reason', 'storage full', 'halt', '',
  'updated_at', now)
redis.call('HINCRBY', gist, 'version', 1)
redis.call('LPUSH', failures, entry)
redis.call('LTRIM', failures, 0, 99)
announce(gist, events, events_maxlen, redis.call('HGET', gist, 'id'), 'storage_full', now)
return {'ok'}
""",
)


class AddSpend(StrEnum):
    OK = "ok"
    MISSING = "missing"


ADD_SPEND = Script(
    "ADD_SPEND",
    answers=AddSpend,
    keys=(
        "gist",
        "metrics",  # the Prometheus counters (analysis/metrics.py): `llm:<name>`
    ),
    argv=(
        "spent*",  # counter name, amount, ...: calls, prompt_tokens, ...
    ),
    body="""
-- Adds what the LLM judge spent to the gist's `spend:<name>` counters as soon as it is spent,
-- whether or not the step commits: the calls of a step that fails, or that is killed after its
-- batch was answered, are counted too. A gist that expired is not re-created (the Prometheus
-- counters count the spend all the same: it was spent).
for i = 1, #spent, 2 do
  redis.call('HINCRBY', metrics, 'llm:' .. spent[i], spent[i + 1])
end
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
for i = 1, #spent, 2 do
  redis.call('HINCRBY', gist, 'spend:' .. spent[i], spent[i + 1])
end
redis.call('HINCRBY', gist, 'version', 1)
return {'ok'}
""",
)


SCRIPTS: tuple[Script, ...] = (
    BEGIN_STEP,
    HEARTBEAT,
    SAVE_SNAPSHOT,
    COMMIT_STEP,
    STEP_STOP,
    STORAGE_FULL,
    ADD_SPEND,
)
