"""An analysis's creation: the gist (every field of `models.GistField`), its control key and the
indexes in one step, within the owner's limit of active analyses.

Every key the script touches is passed in KEYS.
"""

from enum import StrEnum

from analysis.db.script import Script
from analysis.db.scripts.prologue import PROLOGUE


class Create(StrEnum):
    OK = "ok"
    LIMIT = "limit"  # + how many the owner already runs
    EXISTS = "exists"


CREATE = Script(
    "CREATE",
    answers=Create,
    prologue=PROLOGUE,
    keys=(
        "gist",
        "control",
        "owner_index",
        "all_index",
        "active",  # the owner's active analyses
        "events",
        "live",  # every analysis not yet final
        "active_gists*",  # the gists of the owner's active analyses, as the caller read them
    ),
    argv=(
        "id",
        "owner",
        "now",
        "config",  # JSON
        "target",
        "demo",  # 0/1
        "chain",
        "gist_ttl_s",
        "control_ttl_s",
        "model",
        "max_active",  # analyses per owner
        "events_maxlen",
        "schedule",  # the schedule that started it, '' for none
        "schedule_prev",  # that schedule's previous completed run, '' for none (changes are to it)
        "active_ids*",  # the ids of active_gists, in the same order
    ),
    body="""
-- Only analyses that still exist count toward the limit: an id whose gist expired is pruned
-- from the active set (a member added since the caller read the set counts as existing).
for i, active_gist in ipairs(active_gists) do
  if redis.call('EXISTS', active_gist) == 0 then redis.call('SREM', active, active_ids[i]) end
end
local running = redis.call('SCARD', active)
if running >= tonumber(max_active) then return {'limit', tostring(running)} end
if redis.call('EXISTS', gist) == 1 then return {'exists'} end
redis.call('HSET', gist, 'id', id, 'owner', owner, 'created_at', now,
  'updated_at', now, 'last_progress_at', now, 'config', config, 'status', 'PENDING',
  'reason', '', 'halt', '', 'seq', -1, 'progress', 0, 'confidence', 0, 'target', target,
  'state', '{}', 'result', '[]', 'version', 1, 'refine_gen', 0, 'model', model,
  'demo', demo, 'watchdog_attempts', 0, 'kicked_at', 0, 'note', '', 'schedule', schedule,
  'schedule_prev', schedule_prev)
redis.call('EXPIRE', gist, gist_ttl_s)
redis.call('HSET', control, 'wanted', 'running', 'chain', chain)
redis.call('EXPIRE', control, control_ttl_s)
redis.call('ZADD', owner_index, now, id)
redis.call('ZADD', all_index, now, id)
redis.call('SADD', active, id)
redis.call('SADD', live, id)
event(events, events_maxlen, id, 'created', 'PENDING', -1, 0, 0, now, '')
return {'ok'}
""",
)


SCRIPTS: tuple[Script, ...] = (CREATE,)
