"""The Lua script of the track record's store (analysis/track/record_store.py): a pick record and
every index that finds it, written together and once."""

from enum import StrEnum

from analysis.db.script import Script


class WriteRecord(StrEnum):
    OK = "ok"
    EXISTS = "exists"   # this completion's record is written already (a duplicate delivery)


WRITE_RECORD = Script("WRITE_RECORD", answers=WriteRecord, keys=(
    "record", "all_index", "group_index", "due", "schedule_index",
), argv=(
    "id", "doc", "t_ms", "written_s", "due_s", "ttl_s", "schedule",
), source="""
-- KEYS[1] record  KEYS[2] all_index  KEYS[3] group_index  KEYS[4] due
-- KEYS[5] schedule_index (untouched without a schedule)
-- ARGV[1] id (the record id, '<analysis id>:<seq>')  ARGV[2] doc (the record, JSON)
-- ARGV[3] t_ms (decision time)  ARGV[4] written_s (now: retention counts from here)
-- ARGV[5] due_s (when its first horizon closes)  ARGV[6] ttl_s  ARGV[7] schedule ('' for none)
-- Writes an immutable record once: a second write of the same id changes nothing.
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[6]) == false then
  return {'exists'}
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1]) end
return {'ok'}
""")

TRACK_SCRIPTS: tuple[Script, ...] = (WRITE_RECORD,)
