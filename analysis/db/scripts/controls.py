"""The control actions' scripts: pause, resume, refine, cancel and an admin's force-resume. Each is
idempotent: a repeated tap finds the state it asked for and changes nothing.
"""

from enum import StrEnum

from analysis.db.script import Script
from analysis.db.scripts.prologue import PROLOGUE


class Pause(StrEnum):
    OK = "ok"
    NOOP = "noop"  # + status: already paused
    FINAL = "final"  # + status
    MISSING = "missing"


PAUSE = Script(
    "PAUSE",
    answers=Pause,
    prologue=PROLOGUE,
    keys=("control", "gist", "events"),
    argv=("now", "reason", "events_maxlen", "control_ttl_s"),
    body="""
-- Wanted state -> paused. A step in flight still commits; no new step starts. Idempotent.
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
local status = redis.call('HGET', gist, 'status')
if is_final(status) then return {'final', status} end
-- Held by maintenance: the trader's pause takes it over, so `maintenance off` leaves it paused.
if redis.call('HGET', gist, 'halt') == 'maintenance' then
  redis.call('HSET', gist, 'reason', reason, 'halt', 'user', 'updated_at', now)
  redis.call('HINCRBY', gist, 'version', 1)
  announce(gist, events, events_maxlen, redis.call('HGET', gist, 'id'), 'paused', now)
  return {'ok'}
end
if redis.call('HGET', control, 'wanted') == 'paused' or status == 'PAUSED' then
  return {'noop', status}
end
redis.call('HSET', control, 'wanted', 'paused')
-- The control key may have expired: never write one without a TTL.
redis.call('EXPIRE', control, control_ttl_s)
redis.call('HSET', gist, 'status', 'PAUSED', 'reason', reason, 'halt', 'user', 'updated_at', now)
redis.call('HINCRBY', gist, 'version', 1)
announce(gist, events, events_maxlen, redis.call('HGET', gist, 'id'), 'paused', now)
return {'ok'}
""",
)


class Resume(StrEnum):
    ENQUEUE = "enqueue"  # + the next seq, on the new chain
    FLIPPED = "flipped"  # a step holds the lease: its commit continues the chain
    NOOP = "noop"  # + status: already running
    KEPT = "kept"  # + status: not held by the halt `only_halt` names: left alone
    FINAL = "final"  # + status
    MISSING = "missing"


RESUME = Script(
    "RESUME",
    answers=Resume,
    prologue=PROLOGUE,
    keys=("control", "gist", "lease", "events"),
    argv=(
        "new_chain",
        "now",
        "control_ttl_s",
        "events_maxlen",
        "only_halt",  # '' resumes any pause; 'maintenance' only what maintenance halted
    ),
    body="""
-- paused -> running. If a step holds the lease, only flip the state (its commit continues the
-- chain); otherwise mint the new chain and answer 'enqueue' with the next seq. Ten duplicate
-- resumes give one chain: only the first finds the state paused.
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
local status = redis.call('HGET', gist, 'status')
if is_final(status) then return {'final', status} end
if only_halt ~= '' and redis.call('HGET', gist, 'halt') ~= only_halt then
  return {'kept', status}
end
local wanted = redis.call('HGET', control, 'wanted')
if wanted == 'running' and status ~= 'PAUSED' then return {'noop', status} end
local id = redis.call('HGET', gist, 'id')
local seq = tonumber(redis.call('HGET', gist, 'seq'))
local running = 'RUNNING'
if seq < 0 then running = 'PENDING' end
redis.call('HSET', control, 'wanted', 'running')
redis.call('EXPIRE', control, control_ttl_s)
redis.call('HSET', gist, 'status', running, 'reason', '', 'halt', '', 'updated_at', now,
  'last_progress_at', now, 'watchdog_attempts', 0)
redis.call('HINCRBY', gist, 'version', 1)
announce(gist, events, events_maxlen, id, 'resumed', now)
if wanted == 'paused' and redis.call('EXISTS', lease) == 1 then return {'flipped'} end
redis.call('HSET', control, 'chain', new_chain)
return {'enqueue', tostring(seq + 1)}
""",
)


class Refine(StrEnum):
    ENQUEUE = "enqueue"  # + the next seq, the raised target: a completed one restarts
    RAISED = "raised"  # + the raised target: the chain carries on
    STALE = "stale"  # + the current generation: this refine was applied already
    AT_CAP = "at_cap"  # + the target
    LIMIT = "limit"  # + how many the owner runs, the limit: a restart would pass it
    QUOTA = "quota"  # + starts and restarts in the last hour, the hourly quota
    FINAL = "final"  # + status
    MISSING = "missing"


REFINE = Script(
    "REFINE",
    answers=Refine,
    prologue=PROLOGUE,
    keys=(
        "control",
        "gist",
        "events",
        "active",  # the owner's active analyses
        "live",  # every analysis not yet final
        "owner_index",  # the owner's analyses by creation time
        "restarts",  # the owner's restarts (refines of a completed analysis) in the last hour
    ),
    argv=(
        "generation",  # the refine generation the caller saw
        "new_chain",
        "step",
        "cap",  # of the target
        "refine_model",  # '' keeps the model
        "now",
        "control_ttl_s",
        "events_maxlen",
        "max_active",  # analyses per owner
        "max_starts",  # starts and restarts per owner in an hour
    ),
    body="""
-- Raises the target once per generation. From COMPLETED it restarts the chain ('enqueue'),
-- which counts like a start: refused at the owner's active limit or hourly quota, and recorded
-- in `restarts`; from PENDING/RUNNING/PAUSED it only raises the target ('raised').
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
local g = redis.call('HMGET', gist, 'status', 'refine_gen', 'target', 'seq', 'id')
local status = g[1]
if status == 'FAILED' or status == 'CANCELLED' then return {'final', status} end
if g[2] ~= generation then return {'stale', g[2]} end
local target = tonumber(g[3])
if target >= tonumber(cap) - 1e-9 then return {'at_cap', g[3]} end
local hour_ago = tonumber(now) - 3600
if status == 'COMPLETED' then
  local running = redis.call('SCARD', active)
  if running >= tonumber(max_active) then return {'limit', tostring(running), max_active} end
  local starts = redis.call('ZCOUNT', owner_index, hour_ago, '+inf')
    + redis.call('ZCOUNT', restarts, hour_ago, '+inf')
  if starts >= tonumber(max_starts) then return {'quota', tostring(starts), max_starts} end
end
local raised = math.min(target + tonumber(step), tonumber(cap))
raised = math.floor(raised * 10000 + 0.5) / 10000
redis.call('HSET', gist, 'target', tostring(raised), 'refine_gen', tonumber(g[2]) + 1,
  'updated_at', now)
if refine_model ~= '' then redis.call('HSET', gist, 'model', refine_model) end
redis.call('HINCRBY', gist, 'version', 1)
if status ~= 'COMPLETED' then
  announce(gist, events, events_maxlen, g[5], 'refined', now)
  return {'raised', tostring(raised)}
end
redis.call('HSET', gist, 'status', 'RUNNING', 'reason', '', 'halt', '', 'last_progress_at', now,
  'watchdog_attempts', 0)
redis.call('HSET', control, 'wanted', 'running', 'chain', new_chain)
redis.call('EXPIRE', control, control_ttl_s)
redis.call('SADD', active, g[5])
redis.call('SADD', live, g[5])
redis.call('ZADD', restarts, now, g[5] .. ':' .. g[2])
redis.call('ZREMRANGEBYSCORE', restarts, '-inf', hour_ago)
redis.call('EXPIRE', restarts, 3600)
announce(gist, events, events_maxlen, g[5], 'refined', now)
return {'enqueue', tostring(tonumber(g[4]) + 1), tostring(raised)}
""",
)


class Cancel(StrEnum):
    OK = "ok"
    FINAL = "final"  # + status
    MISSING = "missing"


CANCEL = Script(
    "CANCEL",
    answers=Cancel,
    prologue=PROLOGUE,
    keys=(
        "control",
        "gist",
        "events",
        "active",  # the owner's active analyses
    ),
    argv=("now", "control_ttl_s", "events_maxlen"),
    body="""
-- Final: a step in flight will find the analysis cancelled and not commit.
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
local status = redis.call('HGET', gist, 'status')
if is_final(status) then return {'final', status} end
local id = redis.call('HGET', gist, 'id')
redis.call('HSET', control, 'wanted', 'cancelled')
redis.call('EXPIRE', control, control_ttl_s)
redis.call('HSET', gist, 'status', 'CANCELLED', 'reason', 'cancelled by user', 'halt', '',
  'updated_at', now)
redis.call('HINCRBY', gist, 'version', 1)
redis.call('SREM', active, id)
announce(gist, events, events_maxlen, id, 'cancelled', now)
return {'ok'}
""",
)


class ForceResume(StrEnum):
    ENQUEUE = "enqueue"  # + the next seq, on the new chain
    FINAL = "final"  # + status
    MISSING = "missing"


FORCE_RESUME = Script(
    "FORCE_RESUME",
    answers=ForceResume,
    prologue=PROLOGUE,
    keys=(
        "control",
        "gist",
        "lease",
        "events",
    ),
    argv=("new_chain", "now", "control_ttl_s", "events_maxlen"),
    body="""
-- Admin rescue: a new chain even while a lease is held. The old holder is fenced out (its
-- heartbeat and commit fail on the lease and the chain); the next step starts from the last
-- checkpoint.
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
local status = redis.call('HGET', gist, 'status')
if is_final(status) then return {'final', status} end
local seq = tonumber(redis.call('HGET', gist, 'seq'))
local running = 'RUNNING'
if seq < 0 then running = 'PENDING' end
redis.call('DEL', lease)
redis.call('HSET', control, 'wanted', 'running', 'chain', new_chain)
redis.call('EXPIRE', control, control_ttl_s)
redis.call('HSET', gist, 'status', running, 'reason', '', 'halt', '', 'updated_at', now,
  'last_progress_at', now, 'watchdog_attempts', 0)
redis.call('HINCRBY', gist, 'version', 1)
announce(gist, events, events_maxlen, redis.call('HGET', gist, 'id'), 'force_resumed', now)
return {'enqueue', tostring(seq + 1)}
""",
)


SCRIPTS: tuple[Script, ...] = (PAUSE, RESUME, REFINE, CANCEL, FORCE_RESUME)
