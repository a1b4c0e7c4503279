"""The admin alerts' scripts (bot/alert_book.py): throttle an alert per cause, remember the health
level last told. Both run even at Redis's memory limit (allow-oom): "Redis is full" is the alert
that must get through when Redis is full.
"""

from enum import StrEnum

from analysis.db.script import Script


class AlertFirst(StrEnum):
    FIRST = "first"  # the first time within the throttle window: tell the admins
    THROTTLED = "throttled"  # already told


ALERT_FIRST = Script(
    "ALERT_FIRST",
    answers=AlertFirst,
    allow_oom=True,
    keys=(
        "alert",  # a throttle key per cause
    ),
    argv=("throttle_s",),
    body="""
-- Marks an admin alert's cause as told for throttle_s seconds.
if redis.call('SET', alert, '1', 'NX', 'EX', throttle_s) then return {'first'} end
return {'throttled'}
""",
)


class HealthLevelSwap(StrEnum):
    PREVIOUS = "previous"  # + the level last told
    NONE = "none"  # no level was told before


HEALTH_LEVEL_SWAP = Script(
    "HEALTH_LEVEL_SWAP",
    answers=HealthLevelSwap,
    allow_oom=True,
    keys=(
        "health_level",  # the level last told to admins
    ),
    argv=(
        "level",  # the level now
    ),
    body="""
-- Remembers the level now and answers the one before, so Redis memory turning critical is told.
local previous = redis.call('GET', health_level)
redis.call('SET', health_level, level)
if previous then return {'previous', previous} end
return {'none'}
""",
)


SCRIPTS: tuple[Script, ...] = (ALERT_FIRST, HEALTH_LEVEL_SWAP)
