"""Recurring analyses: the schedule as stored and how an interval or a cron line is read (the store
is analysis/schedules/store.py).

Schedules are kept until removed (no TTL). When they fire is beat's business (celery-redbeat,
`tasks/schedule_beat.py`); what a firing does is `ScheduleService.fire` (service.py).

    every:  15m, 1h, 4h, 12h, 1d (any whole number of s, m, h or d, at least
            SCHEDULE_MIN_INTERVAL_S), or cron="m h dom mon dow" (numbers, *, a-b, */n, lists), UTC.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from analysis.config_factory import RankingConfigFactory
from analysis.errors import InvalidConfig, quoted
from analysis.ids import ID_ALPHABET, new_id
from analysis.models import RankingConfig

SCHEDULE_ID_LENGTH = 8
SCHEDULE_ID_PATTERN = re.compile(rf"^[{ID_ALPHABET}]{{{SCHEDULE_ID_LENGTH}}}$")
NOTIFY = ("always", "changes")
ACTIVE, PAUSED = "active", "paused"
MAX_INTERVAL_S = 30 * 86400
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
# The options a schedule keeps: the config factory's arguments (built again at every run, so
# `markets=30` means the 30 most traded markets of that moment).
OPTION_NAMES = ("kind", "markets", "symbols", "timeframe", "top_k", "strategy", "target", "prompt")
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)


# The most days each month can have (February 29 in a leap year): a cron line whose days fall in
# none of its months never fires, and Celery's crontab refuses it with a ValueError.
MOST_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def new_schedule_id() -> str:
    return new_id(SCHEDULE_ID_LENGTH)


@dataclass(frozen=True)
class Every:
    """When a schedule fires: every `interval_s` seconds, or on a cron line (UTC)."""

    text: str  # as shown: "4h", "30s", "cron=0 */4 * * *"
    interval_s: int = 0
    cron: str = ""
    zone: str = ""  # the IANA zone a cron line is read in ("" = UTC); analysis/local_time.py

    def shown(self) -> str:
        """'4h', 'cron=0 9 * * * (Europe/Berlin)': as /schedules shows it."""
        return f"{self.text} ({self.zone})" if self.zone else self.text


def parse_every(text: object, min_interval_s: int) -> Every:
    """'4h' / '30s' / 'cron=0 */4 * * *' (or the bare cron line) into an `Every`, or InvalidConfig."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidConfig('say how often: 15m, 1h, 4h, 12h, 1d or cron="0 */4 * * *" (UTC)')
    text = text.strip()
    if text.lower().startswith("cron="):
        return _parse_cron(text[5:].strip().strip("\"'"), min_interval_s)
    if " " in text:
        return _parse_cron(text, min_interval_s)
    match = _INTERVAL.match(text.lower())
    if match is None:
        raise InvalidConfig(
            f'{quoted(text)} is not an interval: use 15m, 1h, 4h, 12h, 1d or cron="0 */4 * * *" (UTC)'
        )
    seconds = int(match[1]) * UNITS[match[2]]
    if seconds < min_interval_s:
        raise InvalidConfig(f"every {text} is too often: the shortest interval is {min_interval_s} s")
    if seconds > MAX_INTERVAL_S:
        raise InvalidConfig(f"every {text} is too rare: the longest interval is 30d")
    return Every(text=text.lower(), interval_s=seconds)


def _parse_cron(line: str, min_interval_s: int) -> Every:
    fields = line.split()
    if len(fields) != 5:
        raise InvalidConfig(
            f"a cron line has 5 fields (minute hour day month weekday), not {quoted(line, 40)}"
        )
    values = [_cron_field(text, *spec) for text, spec in zip(fields, CRON_FIELDS)]
    days, months = values[2], values[3]
    if not any(day <= MOST_DAYS_IN_MONTH[month] for month in months for day in days):
        why = (
            f"{MONTH_NAMES[min(months) - 1]} has no day {min(days)}"
            if len(months) == 1
            else f"none of its months has a day {min(days)}"
        )
        raise InvalidConfig(f"cron {quoted(line, 40)} never fires: {why}")
    times = sorted(h * 60 + m for h in values[1] for m in values[0])
    gaps = [b - a for a, b in zip(times, times[1:])] + [times[0] + 1440 - times[-1]]
    if min(gaps) * 60 < min_interval_s:
        raise InvalidConfig(
            f"cron {quoted(line, 40)} fires every {min(gaps)} min: the shortest "
            f"interval is {min_interval_s} s"
        )
    return Every(text="cron=" + " ".join(fields), cron=" ".join(fields))


def cron_fields(line: str) -> list[set[int]]:
    """A (valid) cron line's five fields as the sets of values they match."""
    return [_cron_field(text, *spec) for text, spec in zip(line.split(), CRON_FIELDS)]


def _cron_field(text: str, name: str, low: int, high: int) -> set[int]:
    """One cron field: *, */n, a, a-b, a-b/n, comma lists; numbers only."""
    chosen: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"(\*|([0-9]{1,2})(?:-([0-9]{1,2}))?)(?:/([0-9]{1,2}))?", part)
        if match is None:
            raise InvalidConfig(f"cron {name} {quoted(text)}: use numbers, *, a-b, */n or lists")
        start, end = (low, high) if match[1] == "*" else (int(match[2]), int(match[3] or match[2]))
        step = int(match[4]) if match[4] else 1
        if not (low <= start <= end <= high) or step < 1:
            raise InvalidConfig(f"cron {name} {quoted(text)} is outside {low}-{high}")
        chosen.update(range(start, end + 1, step))
    return chosen


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise InvalidConfig(f"unknown option {quoted(unknown[0])}")
    return {name: value for name, value in options.items() if value is not None}


def build_config(factory: RankingConfigFactory, options: dict[str, Any]) -> RankingConfig:
    """The config a run of these options gets, through the same factory as /rank and `start`."""
    return factory.create(**check_options(options))


@dataclass(frozen=True)
class Schedule:
    id: str
    owner: str
    chat_id: int | None  # where runs are posted (the bot's chat); None for the CLI
    every: Every
    options: dict[str, Any]
    summary: str  # the config's summary when the schedule was made
    data_source: str  # the market data it was validated on; every run uses the same
    notify: str  # always: post every run; changes: post only runs whose top K changed
    created_at: float
    state: str = ACTIVE
    reason: str = ""  # why it is paused
    runs: int = 0
    skipped: int = 0
    failures: int = 0  # failed runs in a row
    last_analysis: str = ""
    last_run_at: float = 0.0
    baseline: str = ""  # the last completed run: the next run's changes are against it
    last_fire: str = ""
    note: str = ""  # what the last firing did, when it did not start a run
    resumes: int = 0  # times resumed: a firing begun before a resume judges no failures
    # Export of its latest top K (analysis/export.py): the format ('' when off), the sha256 of the
    # bearer token (the token itself is shown once and never stored), and since when.
    export: str = ""
    export_token_sha256: str = ""
    export_since: float = 0.0

    def to_hash(self) -> dict[str, str]:
        return {
            "id": self.id,
            "owner": self.owner,
            "chat_id": "" if self.chat_id is None else str(self.chat_id),
            "every": self.every.text,
            "interval_s": str(self.every.interval_s),
            "cron": self.every.cron,
            "zone": self.every.zone,
            "options": json.dumps(self.options, sort_keys=True),
            "summary": self.summary,
            "data_source": self.data_source,
            "notify": self.notify,
            "created_at": repr(self.created_at),
            "state": self.state,
            "reason": self.reason,
            "runs": str(self.runs),
            "skipped": str(self.skipped),
            "failures": str(self.failures),
            "last_analysis": self.last_analysis,
            "last_run_at": repr(self.last_run_at),
            "baseline": self.baseline,
            "last_fire": self.last_fire,
            "note": self.note,
            "resumes": str(self.resumes),
            "export": self.export,
            "export_token_sha256": self.export_token_sha256,
            "export_since": repr(self.export_since),
        }

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Schedule:
        return cls(
            id=raw["id"],
            owner=raw["owner"],
            chat_id=int(raw["chat_id"]) if raw.get("chat_id") else None,
            every=Every(
                raw["every"], int(raw.get("interval_s") or 0), raw.get("cron", ""), raw.get("zone", "")
            ),
            options=json.loads(raw.get("options") or "{}"),
            summary=raw.get("summary", ""),
            data_source=raw.get("data_source", "demo"),
            notify=raw.get("notify", "always"),
            created_at=float(raw["created_at"]),
            state=raw.get("state", ACTIVE),
            reason=raw.get("reason", ""),
            runs=int(raw.get("runs") or 0),
            skipped=int(raw.get("skipped") or 0),
            failures=int(raw.get("failures") or 0),
            last_analysis=raw.get("last_analysis", ""),
            last_run_at=float(raw.get("last_run_at") or 0),
            baseline=raw.get("baseline", ""),
            last_fire=raw.get("last_fire", ""),
            note=raw.get("note", ""),
            resumes=int(raw.get("resumes") or 0),
            export=raw.get("export", ""),
            export_token_sha256=raw.get("export_token_sha256", ""),
            export_since=float(raw.get("export_since") or 0),
        )

    def to_jsonable(self, next_run_at: float | None = None) -> dict[str, Any]:
        """What `marketrank schedule list --json` prints per schedule."""
        return {
            "id": self.id,
            "every": self.every.text,
            "zone": self.every.zone or "UTC",
            "owner": self.owner,
            "chat_id": self.chat_id,
            "notify": self.notify,
            "state": self.state,
            "reason": self.reason,
            "next_run_at": next_run_at if self.state == ACTIVE else None,
            "runs": self.runs,
            "skipped": self.skipped,
            "failures_in_a_row": self.failures,
            "last_analysis": self.last_analysis or None,
            "summary": self.summary,
            "options": self.options,
            "data_source": self.data_source,
            "note": self.note,
            "created_at": self.created_at,
            "export": self.export or None,
        }
