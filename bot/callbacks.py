"""Callback data of the bot's buttons: short, versioned, parsed strictly.

Status cards:
    v1:<action>:<analysis id>            pause, resume, cancel, chart, refresh, why
    v1:refine:<analysis id>:<generation>  the refine generation the card showed
The list under /schedules (scope m: the presser's list, a: an admin's /schedules all):
    s1:rm:<schedule id>:<scope>     Remove
    s1:re:<schedule id>:<scope>     Resume (only under a paused schedule)

Callback data comes from the client and can be forged: anything that does not match exactly
(another version, an unknown action, an id outside the service's alphabet, a missing or extra
part) parses to None, and the bot answers that the button is no longer valid. The data says nothing
about who may press it: the service checks the presser's right on every press.
"""

import re
from dataclasses import dataclass

from analysis.ids import ID_ALPHABET
from analysis.schedules.model import SCHEDULE_ID_LENGTH
from analysis.service import ID_LENGTH

VERSION = "v1"
ACTIONS = ("pause", "resume", "cancel", "refine", "chart", "refresh", "why")
_ID = rf"[{ID_ALPHABET}]{{{ID_LENGTH}}}"
_PATTERN = re.compile(
    rf"^{VERSION}:(?:(?P<action>pause|resume|cancel|chart|refresh|why):(?P<id>{_ID})"
    rf"|refine:(?P<refine_id>{_ID}):(?P<generation>0|[1-9][0-9]{{0,5}}))$"
)


@dataclass(frozen=True)
class ButtonPress:
    action: str
    analysis_id: str
    generation: int | None = None  # only for refine


def encode(action: str, analysis_id: str, generation: int | None = None) -> str:
    if action not in ACTIONS or (action == "refine") != (generation is not None):
        raise ValueError(f"no button {action!r} with generation {generation!r}")
    data = f"{VERSION}:{action}:{analysis_id}" + (f":{generation}" if generation is not None else "")
    if parse(data) is None:
        raise ValueError(f"callback data {data!r} would not parse")
    return data


def parse(data: object) -> ButtonPress | None:
    """The press the data describes, or None for anything malformed, unknown or forged."""
    if not isinstance(data, str) or len(data) > 64:
        return None
    match = _PATTERN.fullmatch(data)
    if match is None:
        return None
    if match["refine_id"]:
        return ButtonPress("refine", match["refine_id"], int(match["generation"]))
    return ButtonPress(match["action"], match["id"])


SCHEDULE_VERSION = "s1"
SCHEDULE_PREFIX = rf"^{SCHEDULE_VERSION}:"  # the CallbackQueryHandler's pattern: every schedule button
REMOVE, RESUME = "rm", "re"
_SCHEDULE_PATTERN = re.compile(
    rf"^{SCHEDULE_VERSION}:(?P<action>{REMOVE}|{RESUME}):"
    rf"(?P<id>[{ID_ALPHABET}]{{{SCHEDULE_ID_LENGTH}}}):(?P<scope>[ma])$"
)


@dataclass(frozen=True)
class SchedulePress:
    action: str  # REMOVE or RESUME
    schedule_id: str
    everyone: bool  # the list the button was under was /schedules all


def encode_schedule(action: str, schedule_id: str, everyone: bool) -> str:
    data = f"{SCHEDULE_VERSION}:{action}:{schedule_id}:{'a' if everyone else 'm'}"
    if parse_schedule(data) is None:
        raise ValueError(f"callback data {data!r} would not parse")
    return data


def parse_schedule(data: object) -> SchedulePress | None:
    """The schedule press the data describes, or None for anything malformed, unknown or forged."""
    if not isinstance(data, str) or len(data) > 64:
        return None
    match = _SCHEDULE_PATTERN.fullmatch(data)
    return SchedulePress(match["action"], match["id"], match["scope"] == "a") if match else None
