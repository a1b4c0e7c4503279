"""Callback data of the status-card buttons: short, versioned, parsed strictly.

    v1:<action>:<analysis id>            pause, resume, cancel, chart, refresh, why
    v1:refine:<analysis id>:<generation>  the refine generation the card showed

Callback data comes from the client and can be forged: anything that does not match exactly
(another version, an unknown action, an id outside the service's alphabet, a missing or extra
part) parses to None, and the bot answers that the button is no longer valid.
"""

import re
from dataclasses import dataclass

from analysis.service import ID_ALPHABET, ID_LENGTH

VERSION = "v1"
ACTIONS = ("pause", "resume", "cancel", "refine", "chart", "refresh", "why")
_ID = rf"[{ID_ALPHABET}]{{{ID_LENGTH}}}"
_PATTERN = re.compile(
    rf"^{VERSION}:(?:(?P<action>pause|resume|cancel|chart|refresh|why):(?P<id>{_ID})"
    rf"|refine:(?P<refine_id>{_ID}):(?P<generation>0|[1-9][0-9]{{0,5}}))$")


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
