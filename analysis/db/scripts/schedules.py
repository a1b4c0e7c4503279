"""The schedules' scripts (analysis/schedules/store.py): create and delete a schedule with its indexes,
claim one firing, write a run's bookkeeping, resume a paused schedule.
"""

from enum import StrEnum

from analysis.db.script import Script


class ScheduleCreate(StrEnum):
    OK = "ok"
    LIMIT = "limit"  # + the owner's count
    EXISTS = "exists"


SCHEDULE_CREATE = Script(
    "SCHEDULE_CREATE",
    answers=ScheduleCreate,
    keys=("schedule", "owner_schedules", "all_schedules"),
    argv=(
        "id",
        "now",
        "max_per_owner",
        "fields*",  # field, value pairs
    ),
    body="""
-- Writes nothing unless ok.
local count = redis.call('ZCARD', owner_schedules)
if count >= tonumber(max_per_owner) then return {'limit', tostring(count)} end
if redis.call('EXISTS', schedule) == 1 then return {'exists'} end
redis.call('HSET', schedule, unpack(fields))
redis.call('ZADD', owner_schedules, now, id)
redis.call('ZADD', all_schedules, now, id)
return {'ok'}
""",
)


class ScheduleDelete(StrEnum):
    OK = "ok"
    MISSING = "missing"


SCHEDULE_DELETE = Script(
    "SCHEDULE_DELETE",
    answers=ScheduleDelete,
    keys=("schedule", "owner_schedules", "all_schedules"),
    argv=("id",),
    body="""
if redis.call('EXISTS', schedule) == 0 then return {'missing'} end
redis.call('DEL', schedule)
redis.call('ZREM', owner_schedules, id)
redis.call('ZREM', all_schedules, id)
return {'ok'}
""",
)


class ScheduleClaim(StrEnum):
    OK = "ok"
    MISSING = "missing"
    PAUSED = "paused"
    DUPLICATE = "duplicate"  # a redelivered message of the same firing
    RACED = "raced"  # another firing claimed it since the caller read it


SCHEDULE_CLAIM = Script(
    "SCHEDULE_CLAIM",
    answers=ScheduleClaim,
    keys=("schedule",),
    argv=(
        "fire_id",  # the beat message's task id
        "last_fire_seen",  # by the caller
        "now",
    ),
    body="""
-- One firing of a schedule starts at most one run: a redelivered message (same fire id) is a
-- duplicate, and a firing that raced another (the last fire changed since it was read) backs off.
if redis.call('EXISTS', schedule) == 0 then return {'missing'} end
local s = redis.call('HMGET', schedule, 'state', 'last_fire')
if s[1] ~= 'active' then return {'paused'} end
if s[2] == fire_id then return {'duplicate'} end
if (s[2] or '') ~= last_fire_seen then return {'raced'} end
redis.call('HSET', schedule, 'last_fire', fire_id, 'fired_at', now)
return {'ok'}
""",
)


class ScheduleUpdate(StrEnum):
    OK = "ok"
    MISSING = "missing"  # a removed schedule is never written again


SCHEDULE_UPDATE = Script(
    "SCHEDULE_UPDATE",
    answers=ScheduleUpdate,
    keys=("schedule",),
    argv=(
        "runs",
        "skips",  # to add
        "resumes_seen",  # '' for none
        "fields*",  # field, value pairs to set
    ),
    body="""
-- A firing judges failures (and may pause) from what it read when it began; if the schedule was
-- resumed since (its resumes count moved), that judgement is stale: the failures count, state
-- and reason the resume set are kept, and only the run's own bookkeeping is written.
if redis.call('EXISTS', schedule) == 0 then return {'missing'} end
if tonumber(runs) ~= 0 then redis.call('HINCRBY', schedule, 'runs', runs) end
if tonumber(skips) ~= 0 then redis.call('HINCRBY', schedule, 'skipped', skips) end
local resumes = redis.call('HGET', schedule, 'resumes') or '0'
local stale = resumes_seen ~= '' and resumes ~= resumes_seen
local kept = {}
for i = 1, #fields, 2 do
  local name = fields[i]
  if not (stale and (name == 'failures' or name == 'state' or name == 'reason')) then
    table.insert(kept, name)
    table.insert(kept, fields[i + 1])
  end
end
if #kept > 0 then redis.call('HSET', schedule, unpack(kept)) end
return {'ok'}
""",
)


class ScheduleResume(StrEnum):
    OK = "ok"
    ACTIVE = "active"  # it was not paused: nothing changed
    MISSING = "missing"


SCHEDULE_RESUME = Script(
    "SCHEDULE_RESUME",
    answers=ScheduleResume,
    keys=("schedule",),
    argv=(
        "note",  # what /schedules shows until the next run starts
    ),
    body="""
-- paused -> active, with no reason and no failures in a row; anything else is left as it is, so
-- two resumes (a double tap) resume once. Beat's entry was kept while paused: the next firing is
-- at its next due time, and SCHEDULE_CLAIM lets it start a run again.
if redis.call('EXISTS', schedule) == 0 then return {'missing'} end
if redis.call('HGET', schedule, 'state') ~= 'paused' then return {'active'} end
redis.call('HSET', schedule, 'state', 'active', 'reason', '', 'failures', '0', 'note', note)
redis.call('HINCRBY', schedule, 'resumes', 1)  -- a firing begun before it judges nothing (UPDATE)
return {'ok'}
""",
)


SCRIPTS: tuple[Script, ...] = (
    SCHEDULE_CREATE,
    SCHEDULE_DELETE,
    SCHEDULE_CLAIM,
    SCHEDULE_UPDATE,
    SCHEDULE_RESUME,
)
