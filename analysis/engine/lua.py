"""Every Lua script marketrank runs: each is one atomic read-modify-write across the keys it names.

Each script opens with a comment naming its KEYS and ARGV; every key a script touches is passed in
KEYS. Scripts answer with a list whose first element is a code word (`ok`, `noop`, ...) so the
Python side can say plainly what happened. The gist's `version` is bumped by every script that
changes the gist, so readers can tell a changed document from an unchanged one.
"""

# Shared prologue: status words that end an analysis.
_FINAL = """
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
"""

CREATE = """
-- KEYS[1] gist  KEYS[2] control  KEYS[3] owner index  KEYS[4] all index  KEYS[5] owner's active set
-- KEYS[6] events  KEYS[7] live index (every analysis not yet final)
-- ARGV[1] id  ARGV[2] owner  ARGV[3] now  ARGV[4] config JSON  ARGV[5] target  ARGV[6] demo (0/1)
-- ARGV[7] chain token  ARGV[8] gist TTL s  ARGV[9] control TTL s  ARGV[10] model
-- ARGV[11] max active analyses per owner  ARGV[12] events maxlen
-- ARGV[13] schedule id ('' unless a schedule started it)  ARGV[14] the schedule's previous
-- completed run ('' for none): what its changes are computed against
-- KEYS[8..] gists of the owner's active analyses as the caller read them; ARGV[15..] their ids
-- Only analyses that still exist count toward the limit: an id whose gist expired is pruned
-- from the active set (a member added since the caller read the set counts as existing).
""" + _FINAL + """
for i = 8, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SREM', KEYS[5], ARGV[i + 7]) end
end
local active = redis.call('SCARD', KEYS[5])
if active >= tonumber(ARGV[11]) then return {'limit', tostring(active)} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', ARGV[2], 'created_at', ARGV[3],
  'updated_at', ARGV[3], 'last_progress_at', ARGV[3], 'config', ARGV[4], 'status', 'PENDING',
  'reason', '', 'seq', -1, 'progress', 0, 'confidence', 0, 'target', ARGV[5], 'state', '{}',
  'result', '[]', 'version', 1, 'refine_gen', 0, 'model', ARGV[10], 'demo', ARGV[6],
  'watchdog_attempts', 0, 'kicked_at', 0, 'note', '', 'schedule', ARGV[13],
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
"""

BEGIN_STEP = """
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events
-- ARGV[1] chain token  ARGV[2] seq  ARGV[3] attempt token  ARGV[4] lease ms  ARGV[5] now
-- ARGV[6] control TTL s  ARGV[7] events maxlen
-- Proceeds only if control says running, the chain is current, seq follows the last committed
-- step and no live lease is held; then takes the lease. Answers ok + the gist fields a step needs.
""" + _FINAL + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- A control key that expired while the analysis still runs: park it, the user can resume.
  -- One already paused keeps its reason (a late delivery must not rewrite what the user sees).
  if status ~= 'RUNNING' and status ~= 'PENDING' then return {'expired'} end
  redis.call('HSET', KEYS[2], 'status', 'PAUSED', 'reason', 'control expired', 'updated_at', ARGV[5])
  redis.call('HINCRBY', KEYS[2], 'version', 1)
  announce(KEYS[2], KEYS[4], ARGV[7], redis.call('HGET', KEYS[2], 'id'), 'paused', ARGV[5])
  return {'expired'}
end
local control = redis.call('HMGET', KEYS[1], 'wanted', 'chain')
if control[1] ~= 'running' then return {control[1]} end
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
"""

HEARTBEAT = """
-- KEYS[1] lease
-- ARGV[1] attempt token  ARGV[2] lease ms
-- Renews the lease only for its holder; 0 tells a zombie it has been fenced out.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

SAVE_SNAPSHOT = """
-- KEYS[1] lease  KEYS[2] candles
-- ARGV[1] attempt token  ARGV[2] TTL s  ARGV[3], ARGV[4], ... symbol, its candle block refs (JSON), ...
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
"""

COMMIT_STEP = """
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] history  KEYS[5] events
-- KEYS[6] owner's active set
-- ARGV[1] attempt token  ARGV[2] chain token  ARGV[3] seq  ARGV[4] state JSON  ARGV[5] progress
-- ARGV[6] confidence  ARGV[7] done (0/1)  ARGV[8] result JSON  ARGV[9] history entry JSON
-- ARGV[10] target the step worked toward  ARGV[11] now  ARGV[12] events maxlen
-- ARGV[13] note shown with the result ('' for none)  ARGV[14] gist TTL s  ARGV[15] control TTL s
-- ARGV[16] status after the step when not done (RUNNING; INIT passes RUNNING too)
-- Only the lease holder on the current chain commits seq = committed + 1; answers the decision.
""" + _FINAL + """
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
  redis.call('HSET', KEYS[2], 'status', 'COMPLETED', 'reason', '')
  redis.call('SREM', KEYS[6], id)
elseif wanted == 'paused' then
  decision = 'paused'
  redis.call('HSET', KEYS[2], 'status', 'PAUSED')
else
  decision = 'continue'
  redis.call('HSET', KEYS[2], 'status', ARGV[16], 'reason', '')
end
announce(KEYS[2], KEYS[5], ARGV[12], id, 'step', ARGV[11])
return {decision}
"""

STEP_STOP = """
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events  KEYS[5] owner's active set
-- ARGV[1] attempt token  ARGV[2] chain token  ARGV[3] PAUSED or FAILED  ARGV[4] reason  ARGV[5] now
-- ARGV[6] events maxlen
-- A step that cannot finish ends softly: the analysis is paused (or failed) with a reason and the
-- lease is released. Only the lease holder on the current chain may do this.
""" + _FINAL + """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {'lost_lease'} end
if redis.call('HGET', KEYS[1], 'chain') ~= ARGV[2] then return {'stale_chain'} end
redis.call('DEL', KEYS[3])
local id = redis.call('HGET', KEYS[2], 'id')
if is_final(redis.call('HGET', KEYS[2], 'status')) then return {'final'} end
redis.call('HSET', KEYS[2], 'status', ARGV[3], 'reason', ARGV[4], 'updated_at', ARGV[5])
redis.call('HINCRBY', KEYS[2], 'version', 1)
if ARGV[3] == 'FAILED' then
  redis.call('HSET', KEYS[1], 'wanted', 'failed')
  redis.call('SREM', KEYS[5], id)
else
  redis.call('HSET', KEYS[1], 'wanted', 'paused')
end
announce(KEYS[2], KEYS[4], ARGV[6], id, string.lower(ARGV[3]), ARGV[5])
return {'ok'}
"""

PAUSE = """
-- KEYS[1] control  KEYS[2] gist  KEYS[3] events
-- ARGV[1] now  ARGV[2] reason  ARGV[3] events maxlen  ARGV[4] control TTL s
-- Wanted state -> paused. A step in flight still commits; no new step starts. Idempotent.
""" + _FINAL + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
if redis.call('HGET', KEYS[1], 'wanted') == 'paused' or status == 'PAUSED' then
  return {'noop', status}
end
redis.call('HSET', KEYS[1], 'wanted', 'paused')
redis.call('EXPIRE', KEYS[1], ARGV[4])  -- the control key may have expired: never write one without a TTL
redis.call('HSET', KEYS[2], 'status', 'PAUSED', 'reason', ARGV[2], 'updated_at', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'version', 1)
announce(KEYS[2], KEYS[3], ARGV[3], redis.call('HGET', KEYS[2], 'id'), 'paused', ARGV[1])
return {'ok'}
"""

RESUME = """
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events
-- ARGV[1] new chain token  ARGV[2] now  ARGV[3] control TTL s  ARGV[4] events maxlen
-- paused -> running. If a step holds the lease, only flip the state (its commit continues the
-- chain); otherwise mint the new chain and answer 'enqueue' with the next seq. Ten duplicate
-- resumes give one chain: only the first finds the state paused.
""" + _FINAL + """
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
redis.call('HSET', KEYS[2], 'status', running, 'reason', '', 'updated_at', ARGV[2],
  'last_progress_at', ARGV[2], 'watchdog_attempts', 0)
redis.call('HINCRBY', KEYS[2], 'version', 1)
announce(KEYS[2], KEYS[4], ARGV[4], id, 'resumed', ARGV[2])
if wanted == 'paused' and redis.call('EXISTS', KEYS[3]) == 1 then return {'flipped'} end
redis.call('HSET', KEYS[1], 'chain', ARGV[1])
return {'enqueue', tostring(seq + 1)}
"""

REFINE = """
-- KEYS[1] control  KEYS[2] gist  KEYS[3] events  KEYS[4] owner's active set  KEYS[5] live index
-- ARGV[1] refine generation the caller saw  ARGV[2] new chain token  ARGV[3] target step
-- ARGV[4] target cap  ARGV[5] refine model ('' keeps the model)  ARGV[6] now  ARGV[7] control TTL s
-- ARGV[8] events maxlen
-- Raises the target once per generation. From COMPLETED it restarts the chain ('enqueue');
-- from PENDING/RUNNING/PAUSED it only raises the target ('raised'), the chain carries on.
""" + _FINAL + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local g = redis.call('HMGET', KEYS[2], 'status', 'refine_gen', 'target', 'seq', 'id')
local status = g[1]
if status == 'FAILED' or status == 'CANCELLED' then return {'final', status} end
if g[2] ~= ARGV[1] then return {'stale', g[2]} end
local target = tonumber(g[3])
local cap = tonumber(ARGV[4])
if target >= cap - 1e-9 then return {'at_cap', g[3]} end
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
redis.call('HSET', KEYS[2], 'status', 'RUNNING', 'reason', '', 'last_progress_at', ARGV[6],
  'watchdog_attempts', 0)
redis.call('HSET', KEYS[1], 'wanted', 'running', 'chain', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[4], g[5])
redis.call('SADD', KEYS[5], g[5])
announce(KEYS[2], KEYS[3], ARGV[8], g[5], 'refined', ARGV[6])
return {'enqueue', tostring(tonumber(g[4]) + 1), tostring(raised)}
"""

CANCEL = """
-- KEYS[1] control  KEYS[2] gist  KEYS[3] events  KEYS[4] owner's active set
-- ARGV[1] now  ARGV[2] control TTL s  ARGV[3] events maxlen
-- Final: a step in flight will find the analysis cancelled and not commit.
""" + _FINAL + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
local id = redis.call('HGET', KEYS[2], 'id')
redis.call('HSET', KEYS[1], 'wanted', 'cancelled')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'status', 'CANCELLED', 'reason', 'cancelled by user', 'updated_at', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('SREM', KEYS[4], id)
announce(KEYS[2], KEYS[3], ARGV[3], id, 'cancelled', ARGV[1])
return {'ok'}
"""

FORCE_RESUME = """
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events
-- ARGV[1] new chain token  ARGV[2] now  ARGV[3] control TTL s  ARGV[4] events maxlen
-- Admin rescue: a new chain even while a lease is held. The old holder is fenced out (its
-- heartbeat and commit fail on the lease and the chain); the next step starts from the last
-- checkpoint.
""" + _FINAL + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq'))
local running = 'RUNNING'
if seq < 0 then running = 'PENDING' end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'wanted', 'running', 'chain', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], 'status', running, 'reason', '', 'updated_at', ARGV[2],
  'last_progress_at', ARGV[2], 'watchdog_attempts', 0)
redis.call('HINCRBY', KEYS[2], 'version', 1)
announce(KEYS[2], KEYS[4], ARGV[4], redis.call('HGET', KEYS[2], 'id'), 'force_resumed', ARGV[2])
return {'enqueue', tostring(seq + 1)}
"""

WATCHDOG_CHECK = """
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events
-- ARGV[1] now  ARGV[2] grace s  ARGV[3] max attempts  ARGV[4] events maxlen
-- ARGV[5] '1' to only answer the verdict (for /stuck), '0' to act on it
-- ARGV[6..] the deliveries of this analysis the broker still holds, each 'chain:seq'
-- The one rule for "stuck" (the watchdog acts on it, /stuck shows it). An analysis that should
-- run, holds no lease, and whose next step (current chain, committed seq + 1) is not pending in
-- the broker gets that step re-enqueued ('kick') once nothing moved (no commit, no kick) for the
-- grace period, a bounded number of times; then it is paused with a reason ('gave_up'). A step
-- that waits in the broker is never kicked however long the queue ('queued'). A lost control key
-- parks the analysis as 'control expired'. Read-only, a paused analysis the watchdog gave up on
-- answers 'gave_up' and one without its control key 'expired'.
""" + _FINAL + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local dry = ARGV[5] == '1'
local g = redis.call('HMGET', KEYS[2], 'status', 'seq', 'last_progress_at', 'kicked_at',
  'watchdog_attempts', 'id')
if g[1] ~= 'RUNNING' and g[1] ~= 'PENDING' then
  if dry and g[1] == 'PAUSED' then
    if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired'} end
    if tonumber(g[5]) >= tonumber(ARGV[3]) then return {'gave_up'} end
  end
  return {'idle', g[1]}
end
local now = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  if dry then return {'expired'} end
  redis.call('HSET', KEYS[2], 'status', 'PAUSED', 'reason', 'control expired', 'updated_at', ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'version', 1)
  announce(KEYS[2], KEYS[4], ARGV[4], g[6], 'paused', ARGV[1])
  return {'expired'}
end
local control = redis.call('HMGET', KEYS[1], 'wanted', 'chain')
if control[1] ~= 'running' then return {'idle', 'wanted'} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'leased'} end
local next_step = control[2] .. ':' .. (tonumber(g[2]) + 1)
for i = 6, #ARGV do
  if ARGV[i] == next_step then return {'queued'} end
end
local quiet_since = math.max(tonumber(g[3]), tonumber(g[4]))
if now - quiet_since < tonumber(ARGV[2]) then return {'recent'} end
local attempts = tonumber(g[5]) + 1
if attempts > tonumber(ARGV[3]) then
  local reason = 'stuck: no progress after ' .. (attempts - 1) .. ' recovery attempts'
  if dry then return {'gave_up', reason} end
  redis.call('HSET', KEYS[1], 'wanted', 'paused')
  redis.call('HSET', KEYS[2], 'status', 'PAUSED', 'reason', reason, 'updated_at', ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'version', 1)
  announce(KEYS[2], KEYS[4], ARGV[4], g[6], 'stuck', ARGV[1])
  return {'gave_up', reason}
end
if dry then return {'kick', tostring(tonumber(g[2]) + 1), control[2], tostring(attempts)} end
redis.call('HSET', KEYS[2], 'watchdog_attempts', attempts, 'kicked_at', ARGV[1])
return {'kick', tostring(tonumber(g[2]) + 1), control[2], tostring(attempts)}
"""

SWEEP_FINAL = """
-- KEYS[1] live set  KEYS[2] gist  KEYS[3] candles (the data snapshot)
-- ARGV[1] id  ARGV[2] now  ARGV[3] refine window s
-- Drops an analysis that is final or expired from the live set. A completed one keeps its
-- snapshot for the refine window after it finished (a shorter TTL is never lengthened); a
-- cancelled or failed one cannot be refined and loses it now. Answers 'live' or 'dropped'.
""" + _FINAL + """
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
"""

STORAGE_FULL = """#!lua flags=allow-oom
-- KEYS[1] control  KEYS[2] gist  KEYS[3] lease  KEYS[4] events  KEYS[5] failures
-- ARGV[1] chain token  ARGV[2] now  ARGV[3] events maxlen  ARGV[4] failure entry JSON
-- Redis refused a write of a step (its memory limit, noeviction): pause the analysis with the
-- reason 'storage full', release the lease and tell admins (a 'storage_full' event and a
-- failure entry). Runs even at the memory limit (allow-oom): these few bytes are what lets an
-- operator see why nothing moves. Only on the current chain of an analysis that is not final.
""" + _FINAL + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
local status = redis.call('HGET', KEYS[2], 'status')
if is_final(status) then return {'final', status} end
if redis.call('HGET', KEYS[1], 'chain') ~= ARGV[1] then return {'stale_chain'} end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'wanted', 'paused')
redis.call('HSET', KEYS[2], 'status', 'PAUSED', 'reason', 'storage full', 'updated_at', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('LPUSH', KEYS[5], ARGV[4])
redis.call('LTRIM', KEYS[5], 0, 99)
announce(KEYS[2], KEYS[4], ARGV[3], redis.call('HGET', KEYS[2], 'id'), 'storage_full', ARGV[2])
return {'ok'}
"""

ADD_SPEND = """
-- KEYS[1] gist
-- ARGV pairs: counter name, amount (calls, prompt_tokens, ...)
-- Adds what the LLM judge spent to the gist's `spend:<name>` counters as soon as it is spent,
-- whether or not the step commits: the calls of a step that fails, or that is killed after its
-- batch was answered, are counted too. A gist that expired is not re-created.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], 'spend:' .. ARGV[i], ARGV[i + 1])
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
return {'ok'}
"""


# --- schedules (analysis/schedules.py) -----------------------------------------------------------
SCHEDULE_CREATE = """
-- KEYS[1] schedule  KEYS[2] owner's schedules  KEYS[3] all schedules
-- ARGV[1] id  ARGV[2] now  ARGV[3] max schedules per owner  ARGV[4..] field, value pairs
-- Answers ok, limit + the owner's count, or exists. Writes nothing unless ok.
local count = redis.call('ZCARD', KEYS[2])
if count >= tonumber(ARGV[3]) then return {'limit', tostring(count)} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return {'ok'}
"""

SCHEDULE_DELETE = """
-- KEYS[1] schedule  KEYS[2] owner's schedules  KEYS[3] all schedules
-- ARGV[1] id
-- Answers ok or missing.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return {'ok'}
"""

SCHEDULE_CLAIM = """
-- KEYS[1] schedule
-- ARGV[1] fire id (the beat message's task id)  ARGV[2] the last fire id the caller read
-- ARGV[3] now
-- One firing of a schedule starts at most one run: a redelivered message (same fire id) is a
-- duplicate, and a firing that raced another (the last fire changed since it was read) backs off.
-- Answers ok, missing, paused, duplicate or raced.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local s = redis.call('HMGET', KEYS[1], 'state', 'last_fire')
if s[1] ~= 'active' then return {'paused'} end
if s[2] == ARGV[1] then return {'duplicate'} end
if (s[2] or '') ~= ARGV[2] then return {'raced'} end
redis.call('HSET', KEYS[1], 'last_fire', ARGV[1], 'fired_at', ARGV[3])
return {'ok'}
"""

SCHEDULE_UPDATE = """
-- KEYS[1] schedule
-- ARGV[1] runs to add  ARGV[2] skips to add  ARGV[3..] field, value pairs to set
-- Answers ok, or missing (a removed schedule is never written again).
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
if tonumber(ARGV[1]) ~= 0 then redis.call('HINCRBY', KEYS[1], 'runs', ARGV[1]) end
if tonumber(ARGV[2]) ~= 0 then redis.call('HINCRBY', KEYS[1], 'skipped', ARGV[2]) end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
return {'ok'}
"""

STORE_BLOCKS = """
-- KEYS[1..n] candle blocks ({p}block:{sha256})
-- ARGV[1] TTL s  ARGV[2..n+1] each block's content, or none at all to only keep the blocks
-- Content-addressed, so writing is idempotent: an existing block is left as it is. Each block
-- lives at least ARGV[1] seconds from now; a longer TTL (an analysis's snapshot) is never cut.
-- Answers {'ok', missing}: how many blocks were absent (when only keeping them).
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
"""

TAKE_TOKENS = """
-- KEYS[1] token bucket of one exchange (hash: tokens, ms)
-- ARGV[1] refill rate, tokens per second  ARGV[2] capacity  ARGV[3] cost of this request
-- ARGV[4] now in ms, or '' for Redis's own clock (the same for every host; tests pass a time)
-- Reserves `cost` tokens (the balance may go negative) and answers {'ok', wait ms}: how long the
-- caller sleeps before sending, so every process together keeps to the rate.
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
"""

RELEASE_LOCK = """
-- KEYS[1] a lock (string holding its owner's token)
-- ARGV[1] the owner's token
-- Deletes the lock only if this owner still holds it (it may have expired and been taken).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {'ok'}
end
return {'not_held'}
"""
