"""Callback data of the Remove buttons under /schedules: short, versioned, parsed strictly.

    s1:rm:<schedule id>:<scope>     scope m (the presser's list) or a (an admin's /schedules all)

Anything else parses to None and the bot answers that the button is no longer valid. The data
says nothing about who may press it: the service checks the presser owns the schedule (or is an
admin) on every press.
"""

import re
from dataclasses import dataclass

from analysis.schedules import SCHEDULE_ID_ALPHABET, SCHEDULE_ID_LENGTH

VERSION = "s1"
PREFIX_PATTERN = rf"^{VERSION}:"  # the CallbackQueryHandler's pattern: every schedule button
_PATTERN = re.compile(rf"^{VERSION}:rm:(?P<id>[{SCHEDULE_ID_ALPHABET}]{{{SCHEDULE_ID_LENGTH}}}):(?P<scope>[ma])$")


@dataclass(frozen=True)
class RemovePress:
    schedule_id: str
    everyone: bool  # the list the button was under was /schedules all


def encode(schedule_id: str, everyone: bool) -> str:
    data = f"{VERSION}:rm:{schedule_id}:{'a' if everyone else 'm'}"
    if parse(data) is None:
        raise ValueError(f"callback data {data!r} would not parse")
    return data


def parse(data: object) -> RemovePress | None:
    if not isinstance(data, str) or len(data) > 64:
        return None
    match = _PATTERN.fullmatch(data)
    return RemovePress(match["id"], match["scope"] == "a") if match else None
