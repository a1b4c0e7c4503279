"""Every Lua script marketrank runs: each is one atomic read-modify-write across the keys it names.

Each script is declared once, as a `Script` (analysis/db/script.py): its named KEYS and ARGV,
which the store passes by keyword, and the enum of the code words it answers with. Its header
comment names the same KEYS and ARGV in order (tests/test_lua_scripts.py holds the two together).
Every key a script touches is passed in KEYS. The gist's `version` is bumped by every script that
changes the gist, so readers can tell a changed document from an unchanged one; the gist's fields
are `models.GistField`.

Over 400 lines because each script sits with its declaration and its answers, in one place.
"""

from enum import StrEnum

from analysis.db.script import Script

# Shared prologue: status words that end an analysis, events, the control-expired park, and the
# one rule for "stuck".
_PROLOGUE = """
local function is_final(status)
  return status == 'COMPLETED' or status == 'FAILED' or status == 'CANCELLED'
end
local function event(stream, maxlen, id, kind, status, seq, progress, confidence, now, reason)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'id', id, 'kind', kind, 'status', status,
    'seq', seq, 'progress', progress, 'confidence', confidence, 'at', now, 'reason', reason or '')
end
local function announce(gist, stream, maxlen, id, kind, now)
  local g = redis.call('HMGET', gist, 'status', 'seq', 'progress', 'confidence', 'reason')
  event(stream, maxlen, id, kind, g[1], g[2], g[3], g[4], now, g[5])
end
-- A control key that expired while the analysis still runs: park it PAUSED, the user can resume.
local function park_expired(gist, stream, maxlen, now)
  redis.call('HSET', gist, 'status', 'PAUSED', 'reason', 'control expired',
    'halt', 'control_expired', 'updated_at', now)
  redis.call('HINCRBY', gist, 'version', 1)
  announce(gist, stream, maxlen, redis.call('HGET', gist, 'id'), 'paused', now)
end
-- The one rule for "stuck" (the watchdog acts on it, /stuck lists it): an analysis that should
-- run (RUNNING or PENDING, control wanted running) but holds no lease and has shown no progress,
-- nor been kicked by the watchdog, for `grace` seconds.
-- A next step (current chain, committed seq + 1) that waits in the broker ('chain:seq' among
-- `pending`, the deliveries the broker still holds) is never stuck, however long the queue.
-- Answers idle | expired (no control key) | leased | queued | recent | stuck, and the status.
local function stuck_rule(control, gist, lease, now, grace, pending)
  local g = redis.call('HMGET', gist, 'status', 'last_progress_at', 'kicked_at', 'seq')
  if g[1] ~= 'RUNNING' and g[1] ~= 'PENDING' then return 'idle', g[1] end
  if redis.call('EXISTS', control) == 0 then return 'expired', g[1] end
  local c = redis.call('HMGET', control, 'wanted', 'chain')
  if c[1] ~= 'running' then return 'idle', g[1] end
  if redis.call('EXISTS', lease) == 1 then return 'leased', g[1] end
  local next_step = c[2] .. ':' .. (tonumber(g[4]) + 1)
  for _, delivery in ipairs(pending) do
    if delivery == next_step then return 'queued', g[1] end
  end
  local quiet_since = math.max(tonumber(g[2]), tonumber(g[3] or 0))
  if now - quiet_since < grace then return 'recent', g[1] end
  return 'stuck', g[1]
end
"""


class Create(StrEnum):
    OK = "ok"
    LIMIT = "limit"      # + how many the owner already runs
    EXISTS = "exists"


CREATE = Script("CREATE", answers=Create, keys=(
    "gist", "control", "owner_index", "all_index", "active", "events", "live", "active_gists*",
), argv=(
    "id", "owner", "now", "config", "target", "demo", "chain", "gist_ttl_s", "control_ttl_s",
    "model", "max_active", "events_maxlen", "schedule", "schedule_prev", "active_ids*",
), source="""
-- KEYS[1] gist  KEYS[2] control  KEYS[3] owner_index  KEYS[4] all_index  KEYS[5] active (owner's)
-- KEYS[6] events  KEYS[7] live (index of every analysis not yet final)
-- KEYS[8..] active_gists (of the owner's active analyses, as the caller read them)
-- ARGV[1] id  ARGV[2] owner  ARGV[3] now  ARGV[4] config (JSON)  ARGV[5] target  ARGV[6] demo (0/1)
-- ARGV[7] chain  ARGV[8] gist_ttl_s  ARGV[9] control_ttl_s  ARGV[10] model
-- ARGV[11] max_active (analyses per owner)  ARGV[12] events_maxlen
-- ARGV[13] schedule (the schedule that started it, '' for none)  ARGV[14] schedule_prev (that
-- schedule's previous completed run, '' for none: its changes are against it)
-- ARGV[15..] active_ids (of active_gists)
-- Only analyses that still exist count toward the limit: an id whose gist expired is pruned
-- from the active set (a member added since the caller read the set counts as existing).
""" + _PROLOGUE + """
for i = 8, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SREM', KEYS[5], ARGV[i + 7]) end
end
local active = redis.call('SCARD', KEYS[5])
if active >= tonumber(ARGV[11]) then return {'limit', tostring(active)} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', ARGV[2], 'created_at', ARGV[3],
  'updated_at', ARGV[3], 'last_progress_at', ARGV[3], 'config', ARGV[4], 'status', 'PENDING',
  'reason', '', 'halt', '', 'seq', -1, 'progress', 0, 'confidence', 0, 'target', ARGV[5],
  'state', '{}', 'result', '[]', 'version', 1, 'refine_gen', 0, 'model', ARGV[10],
  'demo', ARGV[6], 'watchdog_attempts', 0, 'kicked_at', 0, 'note', '', 'schedule', ARGV[13],
  'schedule_prev', ARGV[14])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('HSET', KEYS[2], 'wanted', 'running', 'chain', ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[9])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('SADD', KEYS[7], ARGV[1])
event(KEYS[6], ARGV[12], ARGV[1], 'created', 'PENDING', -1, 0, 0, ARGV[3], '')
return {'ok'}
""")


class BeginStep(StrEnum):
    OK = "ok"                    # + config, state, target, model, owner, result
    MISSING = "missing"
    FINAL = "final"              # + status
    EXPIRED = "expired"          # the control key was gone: parked PAUSED
    PAUSED = "paused"            # control wants the analysis paused ...
    CANCELLED = "cancelled"      # ... cancelled ...
    FAILED = "failed"            # ... or failed
    STALE_CHAIN = "stale_chain"
    DUPLICATE = "duplicate"      # this seq is already committed
    GAP = "gap"                  # + the last committed seq
    BUSY = "busy"                # + the live lease's holder


BEGIN_STEP = Script("BEGIN_STEP", answers=BeginStep, keys=(
    "control", "gist", "lease", "events",
), argv=(
    "chain", "seq", "attempt", "lease_ms", "now", "control_ttl_s", "events_maxlen",
), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events
-- ARGV[1] chain  ARGV[2] seq  ARGV[3] attempt  ARGV[4] lease_ms  ARGV[5] now
-- ARGV[6] control_ttl_s  ARGV[7] events_maxlen
-- Proceeds only if control says running, the chain is current, seq follows the last committed
-- step and no live lease is held; then takes the lease. Answers ok + the gist fields a step needs.
""" + _PROLOGUE + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- One already paused keeps its reason (a late delivery must not rewrite what the user sees).
  if status == 'RUNNING' or status == 'PENDING' then park_expired(KEYS[2], KEYS[4], ARGV[7], ARGV[5]) end
  return {'expired'}
end
local control = redis.call('HMGET', KEYS[1], 'wanted', 'chain')
if control[1] == 'paused' then return {'paused'} end
if control[1] == 'cancelled' then return {'cancelled'} end
if control[1] == 'failed' then return {'failed'} end
if control[2] ~= ARGV[1] then return {'stale_chain'} end
local committed = tonumber(redis.call('HGET', KEYS[2], 'seq'))
local seq = tonumber(ARGV[2])
if committed >= seq then return {'duplicate'} end
if committed < seq - 1 then return {'gap', tostring(committed)} end
local holder = redis.call('GET', KEYS[3])
if holder then return {'busy', holder} end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[6])
local g = redis.call('HMGET', KEYS[2], 'config', 'state', 'target', 'model', 'owner', 'result')
return {'ok', g[1], g[2], g[3], g[4], g[5], g[6]}
""")


class Heartbeat(StrEnum):
    OK = "ok"
    LOST_LEASE = "lost_lease"


HEARTBEAT = Script("HEARTBEAT", answers=Heartbeat, keys=("lease",), argv=("attempt", "lease_ms"),
                   source="""
-- KEYS[1] lease
-- ARGV[1] attempt  ARGV[2] lease_ms
-- Renews the lease only for its holder; lost_lease tells a zombie it has been fenced out.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'ok'}
end
return {'lost_lease'}
""")


class SaveSnapshot(StrEnum):
    OK = "ok"
    LOST_LEASE = "lost_lease"


SAVE_SNAPSHOT = Script("SAVE_SNAPSHOT", answers=SaveSnapshot, keys=("lease", "candles"),
                       argv=("attempt", "ttl_s", "blobs*"), source="""
-- KEYS[1] lease  KEYS[2] candles
-- ARGV[1] attempt  ARGV[2] ttl_s  ARGV[3..] blobs (symbol, its candle block refs as JSON, ...)
-- INIT's data snapshot, written only by the lease holder: an INIT fenced out while it read the
-- candles (its lease ran out and the step was redone, or an admin force-resumed) must not
-- replace the snapshot a newer attempt saved, which later steps rank.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lost_lease'} end
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {'ok'}
""")


class CommitStep(StrEnum):
    CONTINUE = "continue"        # committed; the next step follows
    COMPLETED = "completed"      # committed; the target is reached
    PAUSED = "paused"            # committed; control wants it paused
    LOST_LEASE = "lost_lease"
    STALE_CHAIN = "stale_chain"
    STALE_SEQ = "stale_seq"
    FINAL = "final"              # + status (cancelled meanwhile: nothing committed)


COMMIT_STEP = Script("COMMIT_STEP", answers=CommitStep, keys=(
    "control", "gist", "lease", "history", "events", "active",
), argv=(
    "attempt", "chain", "seq", "state", "progress", "confidence", "done", "result", "entry",
    "target_used", "now", "events_maxlen", "note", "gist_ttl_s", "control_ttl_s",
), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] history  KEYS[5] events
-- KEYS[6] active (owner's)
-- ARGV[1] attempt  ARGV[2] chain  ARGV[3] seq  ARGV[4] state (JSON)  ARGV[5] progress
-- ARGV[6] confidence  ARGV[7] done (0/1)  ARGV[8] result (JSON)  ARGV[9] entry (history, JSON)
-- ARGV[10] target_used (the target the step worked toward)  ARGV[11] now  ARGV[12] events_maxlen
-- ARGV[13] note (shown with the result, '' for none)  ARGV[14] gist_ttl_s  ARGV[15] control_ttl_s
-- Only the lease holder on the current chain commits seq = committed + 1; answers the decision.
""" + _PROLOGUE + """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {'lost_lease'} end
local chain = redis.call('HGET', KEYS[1], 'chain')
if chain ~= ARGV[2] then return {'stale_chain'} end
local committed = tonumber(redis.call('HGET', KEYS[2], 'seq'))
if committed ~= tonumber(ARGV[3]) - 1 then return {'stale_seq'} end
local status = redis.call('HGET', KEYS[2], 'status')
redis.call('DEL', KEYS[3])
if is_final(status) then return {'final', status} end
local id = redis.call('HGET', KEYS[2], 'id')
redis.call('HSET', KEYS[2], 'state', ARGV[4], 'progress', ARGV[5], 'confidence', ARGV[6],
  'seq', ARGV[3], 'result', ARGV[8], 'note', ARGV[13], 'updated_at', ARGV[11],
  'last_progress_at', ARGV[11], 'watchdog_attempts', 0)
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('RPUSH', KEYS[4], ARGV[9])
redis.call('EXPIRE', KEYS[4], ARGV[14])
redis.call('EXPIRE', KEYS[1], ARGV[15])
local wanted = redis.call('HGET', KEYS[1], 'wanted')
local target = tonumber(redis.call('HGET', KEYS[2], 'target'))
local decision
if ARGV[7] == '1' and target <= tonumber(ARGV[10]) + 1e-9 then
  decision = 'completed'
  redis.call('HSET', KEYS[2], 'status', 'COMPLETED', 'reason', '', 'halt', '')
  redis.call('SREM', KEYS[6], id)
elseif wanted == 'paused' then
  decision = 'paused'
  redis.call('HSET', KEYS[2], 'status', 'PAUSED')
else
  decision = 'continue'
  redis.call('HSET', KEYS[2], 'status', 'RUNNING', 'reason', '', 'halt', '')
end
announce(KEYS[2], KEYS[5], ARGV[12], id, 'step', ARGV[11])
return {decision}
""")


class StepStop(StrEnum):
    OK = "ok"
    LOST_LEASE = "lost_lease"
    STALE_CHAIN = "stale_chain"
    FINAL = "final"


STEP_STOP = Script("STEP_STOP", answers=StepStop, keys=(
    "control", "gist", "lease", "events", "active",
), argv=(
    "attempt", "chain", "status", "reason", "now", "events_maxlen",
), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events  KEYS[5] active (owner's)
-- ARGV[1] attempt  ARGV[2] chain  ARGV[3] status (PAUSED or FAILED)  ARGV[4] reason  ARGV[5] now
-- ARGV[6] events_maxlen
-- A step that cannot finish ends softly: the analysis is paused (or failed) with a reason and the
-- lease is released. Only the lease holder on the current chain may do this.
""" + _PROLOGUE + """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {'lost_lease'} end
if redis.call('HGET', KEYS[1], 'chain') ~= ARGV[2] then return {'stale_chain'} end
redis.call('DEL', KEYS[3])
local id = redis.call('HGET', KEYS[2], 'id')
if is_final(redis.call('HGET', KEYS[2], 'status')) then return {'final'} end
redis.call('HSET', KEYS[2], 'status', ARGV[3], 'reason', ARGV[4], 'halt', '', 'updated_at', ARGV[5])
redis.call('HINCRBY', KEYS[2], 'version', 1)
if ARGV[3] == 'FAILED' then
  redis.call('HSET', KEYS[1], 'wanted', 'failed')
  redis.call('SREM', KEYS[5], id)
else
  redis.call('HSET', KEYS[1], 'wanted', 'paused')
end
announce(KEYS[2], KEYS[4], ARGV[6], id, string.lower(ARGV[3]), ARGV[5])
return {'ok'}
""")


class Pause(StrEnum):
    OK = "ok"
    NOOP = "noop"                # + status: already paused
    FINAL = "final"              # + status
    MISSING = "missing"


PAUSE = Script("PAUSE", answers=Pause, keys=("control", "gist", "events"),
               argv=("now", "reason", "events_maxlen", "control_ttl_s"), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] events
-- ARGV[1] now  ARGV[2] reason  ARGV[3] events_maxlen  ARGV[4] control_ttl_s
-- Wanted state -> paused. A step in flight still commits; no new step starts. Idempotent.
""" + _PROLOGUE + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
if redis.call('HGET', KEYS[1], 'wanted') == 'paused' or status == 'PAUSED' then
  return {'noop', status}
end
redis.call('HSET', KEYS[1], 'wanted', 'paused')
redis.call('EXPIRE', KEYS[1], ARGV[4])  -- the control key may have expired: never write one without a TTL
redis.call('HSET', KEYS[2], 'status', 'PAUSED', 'reason', ARGV[2], 'halt', '', 'updated_at', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'version', 1)
announce(KEYS[2], KEYS[3], ARGV[3], redis.call('HGET', KEYS[2], 'id'), 'paused', ARGV[1])
return {'ok'}
""")


class Resume(StrEnum):
    ENQUEUE = "enqueue"          # + the next seq, on the new chain
    FLIPPED = "flipped"          # a step holds the lease: its commit continues the chain
    NOOP = "noop"                # + status: already running
    FINAL = "final"              # + status
    MISSING = "missing"


RESUME = Script("RESUME", answers=Resume, keys=("control", "gist", "lease", "events"),
                argv=("new_chain", "now", "control_ttl_s", "events_maxlen"), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events
-- ARGV[1] new_chain  ARGV[2] now  ARGV[3] control_ttl_s  ARGV[4] events_maxlen
-- paused -> running. If a step holds the lease, only flip the state (its commit continues the
-- chain); otherwise mint the new chain and answer 'enqueue' with the next seq. Ten duplicate
-- resumes give one chain: only the first finds the state paused.
""" + _PROLOGUE + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
local wanted = redis.call('HGET', KEYS[1], 'wanted')
if wanted == 'running' and status ~= 'PAUSED' then return {'noop', status} end
local id = redis.call('HGET', KEYS[2], 'id')
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq'))
local running = 'RUNNING'
if seq < 0 then running = 'PENDING' end
redis.call('HSET', KEYS[1], 'wanted', 'running')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], 'status', running, 'reason', '', 'halt', '', 'updated_at', ARGV[2],
  'last_progress_at', ARGV[2], 'watchdog_attempts', 0)
redis.call('HINCRBY', KEYS[2], 'version', 1)
announce(KEYS[2], KEYS[4], ARGV[4], id, 'resumed', ARGV[2])
if wanted == 'paused' and redis.call('EXISTS', KEYS[3]) == 1 then return {'flipped'} end
redis.call('HSET', KEYS[1], 'chain', ARGV[1])
return {'enqueue', tostring(seq + 1)}
""")


class Refine(StrEnum):
    ENQUEUE = "enqueue"          # + the next seq, the raised target: a completed one restarts
    RAISED = "raised"            # + the raised target: the chain carries on
    STALE = "stale"              # + the current generation: this refine was applied already
    AT_CAP = "at_cap"            # + the target
    LIMIT = "limit"              # + how many the owner runs, the limit: a restart would pass it
    QUOTA = "quota"              # + starts and restarts in the last hour, the hourly quota
    FINAL = "final"              # + status
    MISSING = "missing"


REFINE = Script("REFINE", answers=Refine, keys=(
    "control", "gist", "events", "active", "live", "owner_index", "restarts",
), argv=(
    "generation", "new_chain", "step", "cap", "refine_model", "now", "control_ttl_s",
    "events_maxlen", "max_active", "max_starts",
), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] events  KEYS[4] active (owner's)
-- KEYS[5] live (index of every analysis not yet final)
-- KEYS[6] owner_index (the owner's analyses by creation time)  KEYS[7] restarts (owner's)
-- ARGV[1] generation (the refine generation the caller saw)  ARGV[2] new_chain
-- ARGV[3] step (of the target)  ARGV[4] cap (of the target)  ARGV[5] refine_model ('' keeps it)
-- ARGV[6] now  ARGV[7] control_ttl_s  ARGV[8] events_maxlen
-- ARGV[9] max_active (analyses per owner)  ARGV[10] max_starts (per owner in an hour)
-- Raises the target once per generation. From COMPLETED it restarts the chain ('enqueue'),
-- which counts like a start: refused at the owner's active limit or hourly quota, and recorded
-- in `restarts`; from PENDING/RUNNING/PAUSED it only raises the target ('raised').
""" + _PROLOGUE + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local g = redis.call('HMGET', KEYS[2], 'status', 'refine_gen', 'target', 'seq', 'id')
local status = g[1]
if status == 'FAILED' or status == 'CANCELLED' then return {'final', status} end
if g[2] ~= ARGV[1] then return {'stale', g[2]} end
local target = tonumber(g[3])
local cap = tonumber(ARGV[4])
if target >= cap - 1e-9 then return {'at_cap', g[3]} end
local hour_ago = tonumber(ARGV[6]) - 3600
if status == 'COMPLETED' then
  local active = redis.call('SCARD', KEYS[4])
  if active >= tonumber(ARGV[9]) then return {'limit', tostring(active), ARGV[9]} end
  local starts = redis.call('ZCOUNT', KEYS[6], hour_ago, '+inf') + redis.call('ZCOUNT', KEYS[7], hour_ago, '+inf')
  if starts >= tonumber(ARGV[10]) then return {'quota', tostring(starts), ARGV[10]} end
end
local raised = math.min(target + tonumber(ARGV[3]), cap)
raised = math.floor(raised * 10000 + 0.5) / 10000
redis.call('HSET', KEYS[2], 'target', tostring(raised), 'refine_gen', tonumber(g[2]) + 1,
  'updated_at', ARGV[6])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], 'model', ARGV[5]) end
redis.call('HINCRBY', KEYS[2], 'version', 1)
if status ~= 'COMPLETED' then
  announce(KEYS[2], KEYS[3], ARGV[8], g[5], 'refined', ARGV[6])
  return {'raised', tostring(raised)}
end
redis.call('HSET', KEYS[2], 'status', 'RUNNING', 'reason', '', 'halt', '', 'last_progress_at', ARGV[6],
  'watchdog_attempts', 0)
redis.call('HSET', KEYS[1], 'wanted', 'running', 'chain', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[4], g[5])
redis.call('SADD', KEYS[5], g[5])
redis.call('ZADD', KEYS[7], ARGV[6], g[5] .. ':' .. g[2])
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', hour_ago)
redis.call('EXPIRE', KEYS[7], 3600)
announce(KEYS[2], KEYS[3], ARGV[8], g[5], 'refined', ARGV[6])
return {'enqueue', tostring(tonumber(g[4]) + 1), tostring(raised)}
""")


class Cancel(StrEnum):
    OK = "ok"
    FINAL = "final"              # + status
    MISSING = "missing"


CANCEL = Script("CANCEL", answers=Cancel, keys=("control", "gist", "events", "active"),
                argv=("now", "control_ttl_s", "events_maxlen"), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] events  KEYS[4] active (owner's)
-- ARGV[1] now  ARGV[2] control_ttl_s  ARGV[3] events_maxlen
-- Final: a step in flight will find the analysis cancelled and not commit.
""" + _PROLOGUE + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
local id = redis.call('HGET', KEYS[2], 'id')
redis.call('HSET', KEYS[1], 'wanted', 'cancelled')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'status', 'CANCELLED', 'reason', 'cancelled by user', 'halt', '',
  'updated_at', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('SREM', KEYS[4], id)
announce(KEYS[2], KEYS[3], ARGV[3], id, 'cancelled', ARGV[1])
return {'ok'}
""")


class ForceResume(StrEnum):
    ENQUEUE = "enqueue"          # + the next seq, on the new chain
    FINAL = "final"              # + status
    MISSING = "missing"


FORCE_RESUME = Script("FORCE_RESUME", answers=ForceResume, keys=("control", "gist", "lease", "events"),
                      argv=("new_chain", "now", "control_ttl_s", "events_maxlen"), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events
-- ARGV[1] new_chain  ARGV[2] now  ARGV[3] control_ttl_s  ARGV[4] events_maxlen
-- Admin rescue: a new chain even while a lease is held. The old holder is fenced out (its
-- heartbeat and commit fail on the lease and the chain); the next step starts from the last
-- checkpoint.
""" + _PROLOGUE + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq'))
local running = 'RUNNING'
if seq < 0 then running = 'PENDING' end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'wanted', 'running', 'chain', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], 'status', running, 'reason', '', 'halt', '', 'updated_at', ARGV[2],
  'last_progress_at', ARGV[2], 'watchdog_attempts', 0)
redis.call('HINCRBY', KEYS[2], 'version', 1)
announce(KEYS[2], KEYS[4], ARGV[4], redis.call('HGET', KEYS[2], 'id'), 'force_resumed', ARGV[2])
return {'enqueue', tostring(seq + 1)}
""")


class WatchdogCheck(StrEnum):
    KICK = "kick"                # + seq, chain, attempt: re-enqueue seq on the current chain
    GAVE_UP = "gave_up"          # + reason: paused, halt 'stuck'
    EXPIRED = "expired"          # the control key was gone: parked PAUSED
    IDLE = "idle"                # + status: not meant to be running
    LEASED = "leased"            # a step is running
    QUEUED = "queued"            # + status: the next step waits in the broker
    RECENT = "recent"            # progress (or a kick) within the grace period
    MISSING = "missing"


WATCHDOG_CHECK = Script("WATCHDOG_CHECK", answers=WatchdogCheck, keys=(
    "control", "gist", "lease", "events",
), argv=("now", "grace_s", "max_attempts", "events_maxlen", "pending*"), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events
-- ARGV[1] now  ARGV[2] grace_s  ARGV[3] max_attempts  ARGV[4] events_maxlen
-- ARGV[5..] pending (the deliveries of this analysis the broker still holds, each 'chain:seq')
-- A stuck analysis (stuck_rule) gets its next step re-enqueued on the current chain ('kick'), a
-- bounded number of times; then it is paused with a reason ('gave_up', halt 'stuck'). A step
-- that waits in the broker is never kicked ('queued'). A lost control key parks it (halt
-- 'control_expired').
""" + _PROLOGUE + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local verdict, status = stuck_rule(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]),
  {unpack(ARGV, 5)})
if verdict == 'expired' then
  park_expired(KEYS[2], KEYS[4], ARGV[4], ARGV[1])
  return {'expired'}
end
if verdict ~= 'stuck' then return {verdict, status} end
local g = redis.call('HMGET', KEYS[2], 'seq', 'watchdog_attempts', 'id')
local attempts = tonumber(g[2]) + 1
if attempts > tonumber(ARGV[3]) then
  local reason = 'stuck: no progress after ' .. (attempts - 1) .. ' recovery attempts'
  redis.call('HSET', KEYS[1], 'wanted', 'paused')
  redis.call('HSET', KEYS[2], 'status', 'PAUSED', 'reason', reason, 'halt', 'stuck',
    'updated_at', ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'version', 1)
  announce(KEYS[2], KEYS[4], ARGV[4], g[3], 'stuck', ARGV[1])
  return {'gave_up', reason}
end
redis.call('HSET', KEYS[2], 'watchdog_attempts', attempts, 'kicked_at', ARGV[1])
return {'kick', tostring(tonumber(g[1]) + 1), redis.call('HGET', KEYS[1], 'chain'), tostring(attempts)}
""")


class StuckCheck(StrEnum):
    STUCK = "stuck"              # + status: the watchdog will kick it
    EXPIRED = "expired"          # + status: no control key; the watchdog will park it
    HALTED = "halted"            # + halt: paused by the watchdog (stuck, control_expired)
    IDLE = "idle"                # + status
    LEASED = "leased"            # + status
    QUEUED = "queued"            # + status: the next step waits in the broker
    RECENT = "recent"            # + status
    MISSING = "missing"


STUCK_CHECK = Script("STUCK_CHECK", answers=StuckCheck, keys=("control", "gist", "lease"),
                     argv=("now", "grace_s", "pending*"), source="""
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease
-- ARGV[1] now  ARGV[2] grace_s
-- ARGV[3..] pending (the deliveries of this analysis the broker still holds, each 'chain:seq')
-- Read only, for /stuck: the watchdog's rule (stuck_rule), and analyses the watchdog halted.
""" + _PROLOGUE + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local g = redis.call('HMGET', KEYS[2], 'status', 'halt')
if g[1] == 'PAUSED' and g[2] and g[2] ~= '' then return {'halted', g[2]} end
local verdict, status = stuck_rule(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]),
  {unpack(ARGV, 3)})
return {verdict, status}
""")


class SweepFinal(StrEnum):
    LIVE = "live"                # not final yet: stays in the live index
    DROPPED = "dropped"          # final or expired: dropped from the live index


SWEEP_FINAL = Script("SWEEP_FINAL", answers=SweepFinal, keys=("live", "gist", "candles"),
                     argv=("id", "now", "refine_window_s"), source="""
-- KEYS[1] live (index of every analysis not yet final)  KEYS[2] gist  KEYS[3] candles (snapshot)
-- ARGV[1] id  ARGV[2] now  ARGV[3] refine_window_s
-- Drops an analysis that is final or expired from the live set. A completed one keeps its
-- snapshot for the refine window after it finished (a shorter TTL is never lengthened); a
-- cancelled or failed one cannot be refined and loses it now.
""" + _PROLOGUE + """
local g = redis.call('HMGET', KEYS[2], 'status', 'updated_at')
if g[1] and not is_final(g[1]) then return {'live'} end
redis.call('SREM', KEYS[1], ARGV[1])
if g[1] == 'COMPLETED' then
  local left = math.floor(tonumber(g[2]) + tonumber(ARGV[3]) - tonumber(ARGV[2]))
  local ttl = redis.call('TTL', KEYS[3])
  if left <= 0 then
    redis.call('DEL', KEYS[3])
  elseif ttl == -1 or ttl > left then
    redis.call('EXPIRE', KEYS[3], left)
  end
else
  redis.call('DEL', KEYS[3])
end
return {'dropped'}
""")


class StorageFull(StrEnum):
    OK = "ok"                    # paused with the reason 'storage full'; admins are told
    FINAL = "final"              # + status
    STALE_CHAIN = "stale_chain"
    MISSING = "missing"


STORAGE_FULL = Script("STORAGE_FULL", answers=StorageFull, keys=(
    "control", "gist", "lease", "events", "failures",
), argv=("chain", "now", "events_maxlen", "entry"), source="""#!lua flags=allow-oom
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events  KEYS[5] failures
-- ARGV[1] chain  ARGV[2] now  ARGV[3] events_maxlen  ARGV[4] entry (failure, JSON)
-- Redis refused a write of a step (its memory limit, noeviction): pause the analysis with the
-- reason 'storage full', release the lease and tell admins (a 'storage_full' event and a
-- failure entry). Runs even at the memory limit (allow-oom): these few bytes are what lets an
-- operator see why nothing moves. Only on the current chain of an analysis that is not final.
""" + _PROLOGUE + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
if redis.call('HGET', KEYS[1], 'chain') ~= ARGV[1] then return {'stale_chain'} end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'wanted', 'paused')
redis.call('HSET', KEYS[2], 'status', 'PAUSED', 'reason', 'storage full', 'halt', '',
  'updated_at', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('LPUSH', KEYS[5], ARGV[4])
redis.call('LTRIM', KEYS[5], 0, 99)
announce(KEYS[2], KEYS[4], ARGV[3], redis.call('HGET', KEYS[2], 'id'), 'storage_full', ARGV[2])
return {'ok'}
""")


class AddSpend(StrEnum):
    OK = "ok"
    MISSING = "missing"


ADD_SPEND = Script("ADD_SPEND", answers=AddSpend, keys=("gist",), argv=("spent*",), source="""
-- KEYS[1] gist
-- ARGV[1..] spent (counter name, amount, ...: calls, prompt_tokens, ...)
-- Adds what the LLM judge spent to the gist's `spend:<name>` counters as soon as it is spent,
-- whether or not the step commits: the calls of a step that fails, or that is killed after its
-- batch was answered, are counted too. A gist that expired is not re-created.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], 'spend:' .. ARGV[i], ARGV[i + 1])
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
return {'ok'}
""")



# --- schedules (analysis/schedules.py) -----------------------------------------------------------
class ScheduleCreate(StrEnum):
    OK = "ok"
    LIMIT = "limit"              # + the owner's count
    EXISTS = "exists"


SCHEDULE_CREATE = Script("SCHEDULE_CREATE", answers=ScheduleCreate,
                         keys=("schedule", "owner_schedules", "all_schedules"),
                         argv=("id", "now", "max_per_owner", "fields*"), source="""
-- KEYS[1] schedule  KEYS[2] owner_schedules  KEYS[3] all_schedules
-- ARGV[1] id  ARGV[2] now  ARGV[3] max_per_owner  ARGV[4..] fields (field, value pairs)
-- Writes nothing unless ok.
local count = redis.call('ZCARD', KEYS[2])
if count >= tonumber(ARGV[3]) then return {'limit', tostring(count)} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return {'ok'}
""")


class ScheduleDelete(StrEnum):
    OK = "ok"
    MISSING = "missing"


SCHEDULE_DELETE = Script("SCHEDULE_DELETE", answers=ScheduleDelete,
                         keys=("schedule", "owner_schedules", "all_schedules"), argv=("id",),
                         source="""
-- KEYS[1] schedule  KEYS[2] owner_schedules  KEYS[3] all_schedules
-- ARGV[1] id
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return {'ok'}
""")


class ScheduleClaim(StrEnum):
    OK = "ok"
    MISSING = "missing"
    PAUSED = "paused"
    DUPLICATE = "duplicate"      # a redelivered message of the same firing
    RACED = "raced"              # another firing claimed it since the caller read it


SCHEDULE_CLAIM = Script("SCHEDULE_CLAIM", answers=ScheduleClaim, keys=("schedule",),
                        argv=("fire_id", "last_fire_seen", "now"), source="""
-- KEYS[1] schedule
-- ARGV[1] fire_id (the beat message's task id)  ARGV[2] last_fire_seen (by the caller)  ARGV[3] now
-- One firing of a schedule starts at most one run: a redelivered message (same fire id) is a
-- duplicate, and a firing that raced another (the last fire changed since it was read) backs off.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local s = redis.call('HMGET', KEYS[1], 'state', 'last_fire')
if s[1] ~= 'active' then return {'paused'} end
if s[2] == ARGV[1] then return {'duplicate'} end
if (s[2] or '') ~= ARGV[2] then return {'raced'} end
redis.call('HSET', KEYS[1], 'last_fire', ARGV[1], 'fired_at', ARGV[3])
return {'ok'}
""")


class ScheduleUpdate(StrEnum):
    OK = "ok"
    MISSING = "missing"          # a removed schedule is never written again


SCHEDULE_UPDATE = Script("SCHEDULE_UPDATE", answers=ScheduleUpdate, keys=("schedule",),
                         argv=("runs", "skips", "resumes_seen", "fields*"), source="""
-- KEYS[1] schedule
-- ARGV[1] runs (to add)  ARGV[2] skips (to add)  ARGV[3] resumes_seen ('' for none)
-- ARGV[4..] fields (field, value pairs to set)
-- A firing judges failures (and may pause) from what it read when it began; if the schedule was
-- resumed since (its resumes count moved), that judgement is stale: the failures count, state
-- and reason the resume set are kept, and only the run's own bookkeeping is written.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
if tonumber(ARGV[1]) ~= 0 then redis.call('HINCRBY', KEYS[1], 'runs', ARGV[1]) end
if tonumber(ARGV[2]) ~= 0 then redis.call('HINCRBY', KEYS[1], 'skipped', ARGV[2]) end
local stale = ARGV[3] ~= '' and (redis.call('HGET', KEYS[1], 'resumes') or '0') ~= ARGV[3]
local fields = {}
for i = 4, #ARGV, 2 do
  local name = ARGV[i]
  if not (stale and (name == 'failures' or name == 'state' or name == 'reason')) then
    table.insert(fields, name)
    table.insert(fields, ARGV[i + 1])
  end
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
return {'ok'}
""")


class ScheduleResume(StrEnum):
    OK = "ok"
    ACTIVE = "active"            # it was not paused: nothing changed
    MISSING = "missing"


SCHEDULE_RESUME = Script("SCHEDULE_RESUME", answers=ScheduleResume, keys=("schedule",),
                         argv=("note",), source="""
-- KEYS[1] schedule
-- ARGV[1] note (what /schedules shows until the next run starts)
-- paused -> active, with no reason and no failures in a row; anything else is left as it is, so
-- two resumes (a double tap) resume once. Beat's entry was kept while paused: the next firing is
-- at its next due time, and SCHEDULE_CLAIM lets it start a run again.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
if redis.call('HGET', KEYS[1], 'state') ~= 'paused' then return {'active'} end
redis.call('HSET', KEYS[1], 'state', 'active', 'reason', '', 'failures', '0', 'note', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'resumes', 1)  -- a firing begun before it judges nothing (UPDATE)
return {'ok'}
""")


# --- the candle cache and rate limit of live data (analysis/markets/) ---------------------------
class StoreBlocks(StrEnum):
    OK = "ok"                    # + how many blocks were absent (when only keeping them)


STORE_BLOCKS = Script("STORE_BLOCKS", answers=StoreBlocks, keys=("blocks*",),
                      argv=("ttl_s", "contents*"), source="""
-- KEYS[1..] blocks (candle blocks, {p}block:{sha256})
-- ARGV[1] ttl_s  ARGV[2..] contents (each block's content, or none at all to only keep them)
-- Content-addressed, so writing is idempotent: an existing block is left as it is. Each block
-- lives at least ttl_s seconds from now; a longer TTL (an analysis's snapshot) is never cut.
local ttl = tonumber(ARGV[1])
local missing = 0
for i, key in ipairs(KEYS) do
  local blob = ARGV[i + 1]
  if blob ~= nil then
    redis.call('SET', key, blob, 'NX')
  end
  local left = redis.call('TTL', key)
  if left == -2 then
    missing = missing + 1
  elseif left ~= -1 and left < ttl then
    redis.call('EXPIRE', key, ttl)
  end
end
return {'ok', missing}
""")


class TakeTokens(StrEnum):
    OK = "ok"                    # + how many ms the caller waits before sending


TAKE_TOKENS = Script("TAKE_TOKENS", answers=TakeTokens, keys=("bucket",),
                     argv=("rate", "capacity", "cost", "now_ms"), source="""
-- KEYS[1] bucket (token bucket of one exchange, hash: tokens, ms)
-- ARGV[1] rate (refill, tokens per second)  ARGV[2] capacity  ARGV[3] cost (of this request)
-- ARGV[4] now_ms, or '' for Redis's own clock (the same for every host; tests pass a time)
-- Reserves `cost` tokens (the balance may go negative) and answers how long the caller sleeps
-- before sending, so every process together keeps to the rate.
local now = tonumber(ARGV[4])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local rate, capacity, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ms')
local tokens = tonumber(b[1]) or capacity
local last = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - last) * rate / 1000) - cost
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ms', now)
redis.call('PEXPIRE', KEYS[1], 60000)
if tokens >= 0 then return {'ok', 0} end
return {'ok', math.ceil(-tokens * 1000 / rate)}
""")


class ReleaseLock(StrEnum):
    OK = "ok"
    NOT_HELD = "not_held"        # it expired and may have been taken


RELEASE_LOCK = Script("RELEASE_LOCK", answers=ReleaseLock, keys=("lock",), argv=("token",),
                      source="""
-- KEYS[1] lock (a string holding its owner's token)
-- ARGV[1] token (the owner's)
-- Deletes the lock only if this owner still holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {'ok'}
end
return {'not_held'}
""")

class AlertFirst(StrEnum):
    FIRST = "first"          # the first time within the throttle window: tell the admins
    THROTTLED = "throttled"  # already told


ALERT_FIRST = Script("ALERT_FIRST", answers=AlertFirst, keys=("alert",), argv=("throttle_s",),
                     source="""#!lua flags=allow-oom
-- KEYS[1] alert (a throttle key per cause)
-- ARGV[1] throttle_s
-- Marks an admin alert's cause as told for throttle_s seconds. Runs even at the memory limit
-- (allow-oom): "Redis is full" is the alert that must get through when Redis is full.
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return {'first'} end
return {'throttled'}
""")


class HealthLevelSwap(StrEnum):
    PREVIOUS = "previous"  # + the level last told
    NONE = "none"          # no level was told before


HEALTH_LEVEL_SWAP = Script("HEALTH_LEVEL_SWAP", answers=HealthLevelSwap, keys=("health_level",),
                           argv=("level",), source="""#!lua flags=allow-oom
-- KEYS[1] health_level (the level last told to admins)
-- ARGV[1] level (the level now)
-- Remembers the level now and answers the one before. Runs even at the memory limit
-- (allow-oom), so Redis memory turning critical is told.
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
if previous then return {'previous', previous} end
return {'none'}
""")

# The scripts of the analysis store (the others are registered by the modules that use them).
SCRIPTS: tuple[Script, ...] = (
    CREATE, BEGIN_STEP, HEARTBEAT, SAVE_SNAPSHOT, COMMIT_STEP, STEP_STOP, PAUSE, RESUME, REFINE,
    CANCEL, FORCE_RESUME, WATCHDOG_CHECK, STUCK_CHECK, ADD_SPEND, SWEEP_FINAL, STORAGE_FULL,
)
ALL_SCRIPTS: tuple[Script, ...] = SCRIPTS + (
    SCHEDULE_CREATE, SCHEDULE_DELETE, SCHEDULE_CLAIM, SCHEDULE_UPDATE, SCHEDULE_RESUME, STORE_BLOCKS,
    TAKE_TOKENS, RELEASE_LOCK, ALERT_FIRST, HEALTH_LEVEL_SWAP,
)
