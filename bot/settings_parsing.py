"""Arguments of /settings, and the `tz=` option of /schedule, into what the services take.

/settings tz=Europe/Berlin quiet=23:00-07:00 finished=silent schedule_changes=off
/schedule cron="0 9 * * *" tz=local top=5       (local: the zone /settings holds)
"""

import shlex

from analysis.errors import quoted
from analysis.user_settings import KINDS
from bot.parsing import UsageError, _split

SETTINGS_KEYS = ("tz", "quiet", *KINDS)


def parse_settings_args(text: str) -> dict:
    """'tz=Europe/Berlin finished=silent' -> {zone: 'Europe/Berlin', modes: {finished: 'silent'}};
    values are checked by the service (one message saying what is accepted)."""
    changes: dict = {}
    modes: dict[str, str] = {}
    for word in _split(text):
        key, sep, value = word.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(
                f"{quoted(word)} is not key=value; for example: /settings tz=Europe/Berlin "
                f"quiet=23:00-07:00 finished=silent"
            )
        if key not in SETTINGS_KEYS:
            raise UsageError(f"unknown setting {quoted(key)}: use {', '.join(SETTINGS_KEYS)}")
        if key in changes or key in modes or (key == "tz" and "zone" in changes):
            raise UsageError(f"{key} is given twice")
        if key == "tz":
            changes["zone"] = value.strip()
        elif key == "quiet":
            changes["quiet"] = value.strip()
        else:
            modes[key] = value.strip().lower()
    if modes:
        changes["modes"] = modes
    return changes


def take_zone_option(text: str) -> tuple[str, str]:
    """('cron="0 9 * * *" top=5', 'local') from 'cron="0 9 * * *" tz=local top=5'; '' when no tz=."""
    words, zone, rest = _split(text), "", []
    for word in words:
        key, sep, value = word.partition("=")
        if sep and key.strip().lower() == "tz":
            if zone:
                raise UsageError("tz is given twice")
            zone = value.strip() or "?"
        else:
            rest.append(word)
    return (shlex.join(rest) if zone else text), zone
