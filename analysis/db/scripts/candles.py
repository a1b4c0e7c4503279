"""The live data's scripts (analysis/markets/): store content-addressed candle blocks, keep one
exchange's request rate across every process (a token bucket), release a fetch lock.
"""

from enum import StrEnum

from analysis.db.script import Script


class StoreBlocks(StrEnum):
    OK = "ok"  # + how many blocks were absent (when only keeping them)


STORE_BLOCKS = Script(
    "STORE_BLOCKS",
    answers=StoreBlocks,
    keys=(
        "blocks*",  # candle blocks, {p}block:{sha256}
    ),
    argv=(
        "ttl_s",
        "contents*",  # each block's content, or none at all to only keep them
    ),
    body="""
-- Content-addressed, so writing is idempotent: an existing block is left as it is. Each block
-- lives at least ttl_s seconds from now; a longer TTL (an analysis's snapshot) is never cut.
local ttl = tonumber(ttl_s)
local missing = 0
for i, key in ipairs(blocks) do
  local blob = contents[i]
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
""",
)


class TakeTokens(StrEnum):
    OK = "ok"  # + how many ms the caller waits before sending


TAKE_TOKENS = Script(
    "TAKE_TOKENS",
    answers=TakeTokens,
    keys=(
        "bucket",  # the token bucket of one exchange, a hash: tokens, ms
    ),
    argv=(
        "rate",  # refill, tokens per second
        "capacity",
        "cost",  # of this request
        "now_ms",  # or '' for Redis's own clock (the same for every host; tests pass a time)
    ),
    body="""
-- Reserves `cost` tokens (the balance may go negative) and answers how long the caller sleeps
-- before sending, so every process together keeps to the rate.
local now = tonumber(now_ms)
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local rate, capacity, cost = tonumber(rate), tonumber(capacity), tonumber(cost)  -- as numbers
local b = redis.call('HMGET', bucket, 'tokens', 'ms')
local tokens = tonumber(b[1]) or capacity
local last = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - last) * rate / 1000) - cost
redis.call('HSET', bucket, 'tokens', tostring(tokens), 'ms', now)
redis.call('PEXPIRE', bucket, 60000)
if tokens >= 0 then return {'ok', 0} end
return {'ok', math.ceil(-tokens * 1000 / rate)}
""",
)


class ReleaseLock(StrEnum):
    OK = "ok"
    NOT_HELD = "not_held"  # it expired and may have been taken


RELEASE_LOCK = Script(
    "RELEASE_LOCK",
    answers=ReleaseLock,
    keys=(
        "lock",  # a string holding its owner's token
    ),
    argv=("token",),
    body="""
-- Deletes the lock only if this owner still holds it.
if redis.call('GET', lock) == token then
  redis.call('DEL', lock)
  return {'ok'}
end
return {'not_held'}
""",
)


SCRIPTS: tuple[Script, ...] = (STORE_BLOCKS, TAKE_TOKENS, RELEASE_LOCK)
