"""Callback data of the buttons under /schedules: short, versioned, parsed strictly.

    s1:rm:<schedule id>:<scope>     Remove
    s1:re:<schedule id>:<scope>     Resume (only under a paused schedule)

scope is m (the presser's list) or a (an admin's /schedules all). Anything else parses to None
and the bot answers that the button is no longer valid. The data says nothing about who may press
it: the service checks the presser owns the schedule (or is an admin) on every press.
"""

import re
from dataclasses import dataclass

from analysis.schedules.model import SCHEDULE_ID_ALPHABET, SCHEDULE_ID_LENGTH

VERSION = "s1"
PREFIX_PATTERN = rf"^{VERSION}:"  # the CallbackQueryHandler's pattern: every schedule button
REMOVE, RESUME = "rm", "re"
_PATTERN = re.compile(rf"^{VERSION}:(?P<action>{REMOVE}|{RESUME}):"
                      rf"(?P<id>[{SCHEDULE_ID_ALPHABET}]{{{SCHEDULE_ID_LENGTH}}}):(?P<scope>[ma])$")


@dataclass(frozen=True)
class SchedulePress:
    action: str  # REMOVE or RESUME
    schedule_id: str
    everyone: bool  # the list the button was under was /schedules all


def encode(action: str, schedule_id: str, everyone: bool) -> str:
    data = f"{VERSION}:{action}:{schedule_id}:{'a' if everyone else 'm'}"
    if parse(data) is None:
        raise ValueError(f"callback data {data!r} would not parse")
    return data


def parse(data: object) -> SchedulePress | None:
    if not isinstance(data, str) or len(data) > 64:
        return None
    match = _PATTERN.fullmatch(data)
    return SchedulePress(match["action"], match["id"], match["scope"] == "a") if match else None
