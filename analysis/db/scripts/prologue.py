"""The Lua every analysis script shares, written once: the status words that end an analysis, how
an event is written, how an analysis whose control key expired is parked, and the one rule for
"stuck" (the watchdog acts on it, /stuck lists it). A script that calls these functions declares
`prologue=PROLOGUE`; its functions take keys and values as parameters and read no KEYS or ARGV.
"""

PROLOGUE = """
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
-- Maintenance (analysis/maintenance.py) holds an analysis at a step boundary: paused with a halt
-- of its own, not a trader's pause, so `maintenance off` resumes exactly these.
local function halt_for_maintenance(control, gist, now)
  redis.call('HSET', control, 'wanted', 'paused')
  redis.call('HSET', gist, 'status', 'PAUSED',
    'reason', 'paused for maintenance: marketrank is being updated', 'halt', 'maintenance',
    'updated_at', now)
  redis.call('HINCRBY', gist, 'version', 1)
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
