"""The watchdog's scripts: act on the one rule for stuck (WATCHDOG_CHECK), read it for /stuck
(STUCK_CHECK), and drop finished analyses from the live index (SWEEP_FINAL). The rule itself is
`stuck_rule` in the prologue, so both read the same rule.
"""

from enum import StrEnum

from analysis.db.script import Script
from analysis.db.scripts.prologue import PROLOGUE


class WatchdogCheck(StrEnum):
    KICK = "kick"  # + seq, chain, attempt: re-enqueue seq on the current chain
    GAVE_UP = "gave_up"  # + reason: paused, halt 'stuck'
    EXPIRED = "expired"  # the control key was gone: parked PAUSED
    IDLE = "idle"  # + status: not meant to be running
    LEASED = "leased"  # a step is running
    QUEUED = "queued"  # + status: the next step waits in the broker
    RECENT = "recent"  # progress (or a kick) within the grace period
    MISSING = "missing"


WATCHDOG_CHECK = Script(
    "WATCHDOG_CHECK",
    answers=WatchdogCheck,
    prologue=PROLOGUE,
    keys=(
        "control",
        "gist",
        "lease",
        "events",
    ),
    argv=(
        "now",
        "grace_s",
        "max_attempts",
        "events_maxlen",
        "pending*",  # the deliveries of this analysis the broker still holds, each 'chain:seq'
    ),
    body="""
-- A stuck analysis (stuck_rule) gets its next step re-enqueued on the current chain ('kick'), a
-- bounded number of times; then it is paused with a reason ('gave_up', halt 'stuck'). A step
-- that waits in the broker is never kicked ('queued'). A lost control key parks it (halt
-- 'control_expired').
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
local verdict, status = stuck_rule(control, gist, lease, tonumber(now), tonumber(grace_s), pending)
if verdict == 'expired' then
  park_expired(gist, events, events_maxlen, now)
  return {'expired'}
end
if verdict ~= 'stuck' then return {verdict, status} end
local g = redis.call('HMGET', gist, 'seq', 'watchdog_attempts', 'id')
local attempts = tonumber(g[2]) + 1
if attempts > tonumber(max_attempts) then
  local reason = 'stuck: no progress after ' .. (attempts - 1) .. ' recovery attempts'
  redis.call('HSET', control, 'wanted', 'paused')
  redis.call('HSET', gist, 'status', 'PAUSED', 'reason', reason, 'halt', 'stuck',
    'updated_at', now)
  redis.call('HINCRBY', gist, 'version', 1)
  announce(gist, events, events_maxlen, g[3], 'stuck', now)
  return {'gave_up', reason}
end
redis.call('HSET', gist, 'watchdog_attempts', attempts, 'kicked_at', now)
local current_chain = redis.call('HGET', control, 'chain')
return {'kick', tostring(tonumber(g[1]) + 1), current_chain, tostring(attempts)}
""",
)


class StuckCheck(StrEnum):
    STUCK = "stuck"  # + status: the watchdog will kick it
    EXPIRED = "expired"  # + status: no control key; the watchdog will park it
    HALTED = "halted"  # + halt: paused by the watchdog (stuck, control_expired)
    IDLE = "idle"  # + status
    LEASED = "leased"  # + status
    QUEUED = "queued"  # + status: the next step waits in the broker
    RECENT = "recent"  # + status
    MISSING = "missing"


STUCK_CHECK = Script(
    "STUCK_CHECK",
    answers=StuckCheck,
    prologue=PROLOGUE,
    keys=(
        "control",
        "gist",
        "lease",
    ),
    argv=(
        "now",
        "grace_s",
        "pending*",  # the deliveries of this analysis the broker still holds, each 'chain:seq'
    ),
    body="""
-- Read only, for /stuck: the watchdog's rule (stuck_rule), and analyses the watchdog halted.
if redis.call('EXISTS', gist) == 0 then return {'missing'} end
local g = redis.call('HMGET', gist, 'status', 'halt')
-- A user's own pause (halt 'user') is not the watchdog's; maintenance's halt is planned, not a
-- failure: neither is listed.
if g[1] == 'PAUSED' and g[2] and g[2] ~= '' and g[2] ~= 'user' and g[2] ~= 'maintenance' then
  return {'halted', g[2]}
end
local verdict, status = stuck_rule(control, gist, lease, tonumber(now), tonumber(grace_s), pending)
return {verdict, status}
""",
)


class SweepFinal(StrEnum):
    LIVE = "live"  # not final yet: stays in the live index
    DROPPED = "dropped"  # final or expired: dropped from the live index


SWEEP_FINAL = Script(
    "SWEEP_FINAL",
    answers=SweepFinal,
    prologue=PROLOGUE,
    keys=(
        "live",  # every analysis not yet final
        "gist",
        "candles",  # the analysis's snapshot
    ),
    argv=("id", "now", "refine_window_s"),
    body="""
-- Drops an analysis that is final or expired from the live set. A completed one keeps its
-- snapshot for the refine window after it finished (a shorter TTL is never lengthened); a
-- cancelled or failed one cannot be refined and loses it now.
local g = redis.call('HMGET', gist, 'status', 'updated_at')
if g[1] and not is_final(g[1]) then return {'live'} end
redis.call('SREM', live, id)
if g[1] == 'COMPLETED' then
  local left = math.floor(tonumber(g[2]) + tonumber(refine_window_s) - tonumber(now))
  local ttl = redis.call('TTL', candles)
  if left <= 0 then
    redis.call('DEL', candles)
  elseif ttl == -1 or ttl > left then
    redis.call('EXPIRE', candles, left)
  end
else
  redis.call('DEL', candles)
end
return {'dropped'}
""",
)


SCRIPTS: tuple[Script, ...] = (WATCHDOG_CHECK, STUCK_CHECK, SWEEP_FINAL)
