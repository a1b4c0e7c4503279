"""Callback data of the /settings buttons: short, versioned, parsed strictly.

    u1:m:<user id>:<kind>:<mode>    set a kind of message to on, silent or off
    u1:q:<user id>:off              quiet hours off
    u1:z:<user id>:utc              time zone back to UTC

The user id is whose settings the message shows: a press by anyone else is refused (the data can
be forged; the service checks the presser is that user on every press).
"""

import re
from dataclasses import dataclass

from analysis.user_settings import KINDS, MODES

VERSION = "u1"
PREFIX_PATTERN = rf"^{VERSION}:"
MODE, QUIET_OFF, ZONE_UTC = "m", "q", "z"
_PATTERN = re.compile(
    rf"^{VERSION}:(?:{MODE}:(?P<user>[1-9][0-9]{{0,15}}):(?P<kind>{'|'.join(KINDS)}):(?P<mode>{'|'.join(MODES)})"
    rf"|{QUIET_OFF}:(?P<quiet_user>[1-9][0-9]{{0,15}}):off"
    rf"|{ZONE_UTC}:(?P<zone_user>[1-9][0-9]{{0,15}}):utc)$"
)


@dataclass(frozen=True)
class SettingsPress:
    action: str  # MODE, QUIET_OFF or ZONE_UTC
    user: str
    kind: str = ""
    mode: str = ""


def encode(action: str, user: int | str, kind: str = "", mode: str = "") -> str:
    tail = {MODE: f"{kind}:{mode}", QUIET_OFF: "off", ZONE_UTC: "utc"}.get(action, "?")
    data = f"{VERSION}:{action}:{user}:{tail}"
    if parse(data) is None:
        raise ValueError(f"callback data {data!r} would not parse")
    return data


def parse(data: object) -> SettingsPress | None:
    """The press the data describes, or None for anything malformed, unknown or forged."""
    if not isinstance(data, str) or len(data) > 64:
        return None
    match = _PATTERN.fullmatch(data)
    if match is None:
        return None
    if match["user"]:
        return SettingsPress(MODE, match["user"], match["kind"], match["mode"])
    if match["quiet_user"]:
        return SettingsPress(QUIET_OFF, match["quiet_user"])
    return SettingsPress(ZONE_UTC, match["zone_user"])
