"""The track record's script (analysis/track/record_store.py): a pick record and every index that
finds it, written together and once."""

from enum import StrEnum

from analysis.db.script import Script


class WriteRecord(StrEnum):
    OK = "ok"
    EXISTS = "exists"  # this completion's record is written already (a duplicate delivery)


WRITE_RECORD = Script(
    "WRITE_RECORD",
    answers=WriteRecord,
    keys=(
        "record",
        "all_index",  # every record id by when it was written
        "group_index",  # the record's (strategy, timeframe, source) by t
        "due",  # records not fully evaluated, by when to look again
        "schedule_index",  # the schedule's records by t (untouched without a schedule)
    ),
    argv=(
        "id",  # the record id, '<analysis id>:<seq>'
        "doc",  # the record, JSON
        "t_ms",  # decision time
        "written_s",  # now: retention counts from here
        "due_s",  # when its first horizon closes
        "ttl_s",
        "schedule",  # '' for none
    ),
    body="""
-- Writes an immutable record once: a second write of the same id changes nothing.
if redis.call('SET', record, doc, 'NX', 'EX', ttl_s) == false then
  return {'exists'}
end
redis.call('ZADD', all_index, written_s, id)
redis.call('ZADD', group_index, t_ms, id)
redis.call('ZADD', due, due_s, id)
if schedule ~= '' then redis.call('ZADD', schedule_index, t_ms, id) end
return {'ok'}
""",
)

SCRIPTS: tuple[Script, ...] = (WRITE_RECORD,)
