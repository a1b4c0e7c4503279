"""A trader's own settings: time zone, quiet hours and, per kind of message, on / silent / off.

Stored per user in Redis (`{p}settings:{user}`, no TTL: kept until changed). Messages that would
arrive in quiet hours are held (`{p}held:{user}`, a capped list with a TTL, indexed in
`{p}held`) and handed back, in order, once the window has ended, for one digest. Only the user
may change their settings; an admin may read them (`marketrank settings <user>`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import redis

from analysis.db.keys import Keys
from analysis.engine.replies import text, texts
from analysis.errors import InvalidConfig, NotAllowed, quoted
from analysis.local_time import UTC_NAME, minute_of_day, offset_label, zone_of
from analysis.service import Actor

# The kinds of message a trader can tune, with the words /settings shows.
KINDS = {
    "finished": "Run finished",
    "schedule_run": "Schedule run posted",
    "schedule_changes": "Schedule changes only",
    "admin_alerts": "Admin alerts",
}
ADMIN_KINDS = ("admin_alerts",)
MODES = ("on", "silent", "off")
SEND, SILENT, OFF, HOLD = "send", "silent", "off", "hold"
_WINDOW = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])\s*[-–—]\s*([01]?[0-9]|2[0-3]):([0-5][0-9])$")
WINDOW_HELP = "give quiet hours as HH:MM-HH:MM in your zone, e.g. 23:00-07:00, or off"


@dataclass(frozen=True)
class UserSettings:
    user: str
    zone: str = UTC_NAME
    quiet: tuple[int, int] | None = None  # (start, end) minutes of the day in `zone`
    modes: dict[str, str] = field(default_factory=dict)  # kind -> on | silent | off

    def mode(self, kind: str) -> str:
        return self.modes.get(kind, "on")

    def quiet_text(self) -> str:
        if self.quiet is None:
            return "off"
        return f"{clock(self.quiet[0])}–{clock(self.quiet[1])}"

    def in_quiet_hours(self, now: float) -> bool:
        if self.quiet is None:
            return False
        start, end = self.quiet
        minute = minute_of_day(now, self.zone)
        return start <= minute < end if start < end else (minute >= start or minute < end)

    def to_hash(self) -> dict[str, str]:
        return {
            "zone": self.zone,
            "quiet": "" if self.quiet is None else f"{self.quiet[0]}-{self.quiet[1]}",
            **{f"mode:{kind}": mode for kind, mode in self.modes.items()},
        }

    @classmethod
    def from_hash(cls, user: str, raw: dict[str, str]) -> UserSettings:
        quiet = None
        if raw.get("quiet"):
            start, _, end = raw["quiet"].partition("-")
            quiet = (int(start), int(end))
        modes = {
            name[5:]: value
            for name, value in raw.items()
            if name.startswith("mode:") and name[5:] in KINDS and value in MODES
        }
        return cls(user=user, zone=raw.get("zone") or UTC_NAME, quiet=quiet, modes=modes)

    def to_jsonable(self) -> dict:
        """What `marketrank settings <user> --json` prints."""
        return {
            "user": self.user,
            "zone": self.zone,
            "quiet_hours": self.quiet_text(),
            "modes": {kind: self.mode(kind) for kind in KINDS},
        }

    def decide(self, kind: str, now: float) -> str:
        """How a new message of `kind` goes out now: send, silent, off, or hold (quiet hours)."""
        mode = self.mode(kind)
        if mode == "off":
            return OFF
        if self.in_quiet_hours(now):
            return HOLD
        return SILENT if mode == "silent" else SEND


def clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_window(value: str) -> tuple[int, int] | None:
    """'23:00-07:00' -> (1380, 420); 'off' -> None; anything else InvalidConfig."""
    text_ = value.strip() if isinstance(value, str) else ""
    if text_.lower() in ("off", "none"):
        return None
    match = _WINDOW.fullmatch(text_)
    if match is None:
        raise InvalidConfig(f"{quoted(value)} is not a window: {WINDOW_HELP}")
    start, end = int(match[1]) * 60 + int(match[2]), int(match[3]) * 60 + int(match[4])
    if start == end:
        raise InvalidConfig(f"quiet hours {quoted(value)} start and end at the same time: {WINDOW_HELP}")
    return start, end


def parse_mode(kind: str, mode: str) -> tuple[str, str]:
    if kind not in KINDS:
        raise InvalidConfig(f"unknown kind of message {quoted(kind)}: use {', '.join(KINDS)}")
    if mode not in MODES:
        raise InvalidConfig(f"{kind} can be on, silent or off, not {quoted(mode)}")
    return kind, mode


@dataclass(frozen=True)
class HeldMessage:
    at: float
    kind: str
    chat_id: int
    text: str  # Telegram HTML, as it would have been sent


class UserSettingsStore:
    def __init__(self, client: redis.Redis, keys: Keys, *, max_held: int, held_ttl_s: int):
        self.redis, self.keys = client, keys
        self.max_held, self.held_ttl_s = max_held, held_ttl_s

    def get(self, user: str) -> UserSettings:
        raw = self.redis.hgetall(self.keys.user_settings(user))
        return UserSettings.from_hash(user, {text(k): text(v) for k, v in raw.items()})

    def save(self, settings: UserSettings) -> None:
        key = self.keys.user_settings(settings.user)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, items=[part for pair in settings.to_hash().items() for part in pair])
            pipe.execute()

    def hold(self, user: str, message: HeldMessage) -> None:
        """Keep the message for the digest: the newest `max_held` are kept, for `held_ttl_s`."""
        key = self.keys.held(user)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(message.__dict__))
            pipe.ltrim(key, -self.max_held, -1)
            pipe.expire(key, self.held_ttl_s)
            pipe.sadd(self.keys.held_users(), user)
            pipe.execute()

    def holding(self) -> list[str]:
        return sorted(texts(self.redis.smembers(self.keys.held_users())))

    def held_count(self, user: str) -> int:
        return int(self.redis.llen(self.keys.held(user)))

    def take(self, user: str) -> list[HeldMessage]:
        """Every message held for the user, oldest first, removed in one transaction (a second
        taker gets none)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(self.keys.held(user), 0, -1)
            pipe.delete(self.keys.held(user))
            pipe.srem(self.keys.held_users(), user)
            raw, _, _ = pipe.execute()
        held = []
        for item in texts(raw):
            try:
                held.append(HeldMessage(**json.loads(item)))
            except (ValueError, TypeError):
                continue  # not ours: never let one bad entry lose the rest
        return held

    def give_back(self, user: str, held: list[HeldMessage]) -> None:
        """Put taken messages back at the head (the digest could not be sent)."""
        if not held:
            return
        key = self.keys.held(user)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, *[json.dumps(m.__dict__) for m in reversed(held)])
            pipe.ltrim(key, 0, self.max_held - 1)
            pipe.expire(key, self.held_ttl_s)
            pipe.sadd(self.keys.held_users(), user)
            pipe.execute()


class UserSettingsService:
    """What the fronts call: read and change a user's settings, decide how a message goes out,
    hold it, and hand back the digests that are due."""

    def __init__(self, store: UserSettingsStore, *, clock: Callable[[], float] = time.time):
        self.store, self.clock = store, clock

    def get(self, user: str, actor: Actor) -> UserSettings:
        """A user's settings: theirs, or anyone's for an admin."""
        if str(user) != actor.user_id and not actor.is_admin:
            raise NotAllowed("those settings belong to someone else")
        return self.store.get(str(user))

    def held_count(self, user: str, actor: Actor) -> int:
        """How many of the user's messages wait for the quiet-hours digest (theirs, or an admin)."""
        self.get(user, actor)
        return self.store.held_count(str(user))

    def zone(self, user: str) -> str:
        return self.store.get(str(user)).zone

    def change(
        self,
        user: str,
        actor: Actor,
        *,
        zone: str | None = None,
        quiet: str | None = None,
        modes: dict[str, str] | None = None,
    ) -> UserSettings:
        """Validate every change, then save them together; only the user may change their own."""
        if str(user) != actor.user_id:
            raise NotAllowed("only you can change your settings")
        current = self.store.get(str(user))
        new_zone = current.zone if zone is None else zone_of(zone).key
        new_quiet = current.quiet if quiet is None else parse_window(quiet)
        new_modes = dict(current.modes)
        for kind, mode in (modes or {}).items():
            kind, mode = parse_mode(kind, mode)
            if kind in ADMIN_KINDS and not actor.is_admin:
                raise NotAllowed("admin alerts are for admins")
            new_modes[kind] = mode
        updated = UserSettings(str(user), new_zone, new_quiet, new_modes)
        self.store.save(updated)
        return updated

    def decide(self, user: str, kind: str) -> str:
        return self.store.get(str(user)).decide(kind, self.clock())

    def hold(self, user: str, kind: str, chat_id: int, text_: str) -> None:
        self.store.hold(str(user), HeldMessage(self.clock(), kind, chat_id, text_))

    def due_digests(self) -> list[tuple[UserSettings, list[HeldMessage]]]:
        """The held messages of every user whose quiet hours are over, taken from Redis."""
        now, due = self.clock(), []
        for user in self.store.holding():
            settings = self.store.get(user)
            if settings.in_quiet_hours(now):
                continue
            held = self.store.take(user)
            if held:
                due.append((settings, held))
        return due

    def give_back(self, user: str, held: list[HeldMessage]) -> None:
        self.store.give_back(user, held)


def window_label(settings: UserSettings, now: float) -> str:
    """'23:00–07:00 UTC+01:00' (the offset of now in the user's zone)."""
    if settings.quiet is None:
        return "off"
    moment = datetime.fromtimestamp(now, timezone.utc).astimezone(zone_of(settings.zone))
    return f"{settings.quiet_text()} {offset_label(moment)}"
