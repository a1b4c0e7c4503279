"""Times in a viewer's own zone, and a cron line read in a zone.

Every time the bot shows goes through `shown_time`, so a trader in Europe/Berlin reads
"14:00 (UTC+01:00)" where the data says 13:00 UTC. A cron line given in a zone is due at the
UTC instant its wall-clock minute has on that day, across daylight-saving changes: beat fires
the schedule at every UTC minute the line could fall on (`utc_candidates`) and a firing goes on
only when the zone's clock matches (`local_instant_due`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from analysis.errors import InvalidConfig, quoted

UTC_NAME = "UTC"
# A beat message may wait in the queue: a firing this late after its local minute still runs.
FIRING_GRACE_S = 15 * 60


def zone_of(name: str) -> ZoneInfo:
    """The zone an IANA name names (Europe/Berlin, America/New_York, UTC), or InvalidConfig."""
    text = name.strip() if isinstance(name, str) else ""
    if text.upper() == UTC_NAME:
        return ZoneInfo(UTC_NAME)
    if not text or text not in available_timezones():
        raise InvalidConfig(
            f"unknown time zone {quoted(name)}: give an IANA name such as "
            f"Europe/Berlin, America/New_York, Asia/Tokyo or UTC"
        )
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidConfig(f"unknown time zone {quoted(name)}") from None


def offset_label(moment: datetime) -> str:
    """UTC+01:00, UTC-04:00, UTC+05:30; plain UTC for a zero offset."""
    offset = moment.utcoffset() or timedelta(0)
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def shown_time(ts: float | None, zone: str = UTC_NAME, fmt: str = "%m-%d %H:%M") -> str:
    """The one format of every time the bot shows: in the viewer's zone, with its UTC offset."""
    if not ts:
        return "-"
    moment = datetime.fromtimestamp(float(ts), timezone.utc).astimezone(zone_of(zone))
    return f"{moment.strftime(fmt)} {offset_label(moment)}"


def minute_of_day(ts: float, zone: str) -> int:
    moment = datetime.fromtimestamp(ts, timezone.utc).astimezone(zone_of(zone))
    return moment.hour * 60 + moment.minute


def offsets_in_use(zone: str, around: float, days: int = 400) -> set[int]:
    """The zone's UTC offsets (minutes) over a year or so from `around`, sampled daily."""
    tz = zone_of(zone)
    start = datetime.fromtimestamp(around, timezone.utc)
    return {
        int((start + timedelta(days=d)).astimezone(tz).utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
        for d in range(-2, days)
    }


def utc_candidates(minutes: set[int], hours: set[int], zone: str, around: float) -> tuple[set[int], set[int]]:
    """(UTC minutes, UTC hours) a beat crontab fires on so that every local (minute, hour) of the
    line is among them whatever offset the zone has; days are left to the local check."""
    utc_minutes, utc_hours = set(), set()
    for offset in offsets_in_use(zone, around):
        for h in hours:
            for m in minutes:
                total = (h * 60 + m - offset) % 1440
                utc_hours.add(total // 60)
                utc_minutes.add(total % 60)
    return utc_minutes, utc_hours


def local_instant_due(fields: list[set[int]], zone: str, now: float) -> float | None:
    """The UTC epoch of the latest local minute matching the cron `fields` (minute, hour, day of
    month, month, day of week with 0 = Sunday) within FIRING_GRACE_S before `now`, else None."""
    tz = zone_of(zone)
    moment = datetime.fromtimestamp(now, timezone.utc).replace(second=0, microsecond=0)
    for back in range(FIRING_GRACE_S // 60 + 1):
        utc_minute = moment - timedelta(minutes=back)
        local = utc_minute.astimezone(tz)
        if (
            local.minute in fields[0]
            and local.hour in fields[1]
            and local.day in fields[2]
            and local.month in fields[3]
            and (local.isoweekday() % 7) in fields[4]
        ):
            return utc_minute.timestamp()
    return None


def next_local_run(fields: list[set[int]], zone: str, after: float, horizon_days: int = 400) -> float | None:
    """The next UTC epoch (after `after`) at which the zone's clock shows a minute of the line."""
    tz = zone_of(zone)
    moment = datetime.fromtimestamp(after, timezone.utc).replace(second=0, microsecond=0) + timedelta(
        minutes=1
    )
    end = moment + timedelta(days=horizon_days)
    while moment < end:
        local = moment.astimezone(tz)
        if not (
            local.month in fields[3] and local.day in fields[2] and (local.isoweekday() % 7) in fields[4]
        ):
            # every zone's offset is a multiple of 15 min: its midnight falls on a UTC quarter
            moment += timedelta(minutes=15 - moment.minute % 15)
            continue
        if local.hour in fields[1] and local.minute in fields[0]:
            return moment.timestamp()
        moment += timedelta(minutes=1)
    return None
