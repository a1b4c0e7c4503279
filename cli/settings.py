"""`marketrank settings <user> [--json]`: a trader's own settings (time zone, quiet hours, each
kind of message on / silent / off, messages held for a digest), read by an admin. Only the user
changes them, with /settings in the bot."""

from __future__ import annotations

import argparse
import json

from analysis.errors import InvalidConfig
from analysis.service import Actor
from analysis.user_settings import KINDS, UserSettingsService, window_label


def add_parser(sub: argparse._SubParsersAction) -> None:
    settings = sub.add_parser("settings", help="a user's own settings (zone, quiet hours, messages)")
    settings.add_argument("user", help="the user's Telegram id")
    settings.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, service: UserSettingsService, actor: Actor) -> int:
    user = str(args.user).strip()
    if not user.isdigit():
        raise InvalidConfig(f"a user is a Telegram user id (digits), not {user[:24]!r}")
    found = service.get(user, actor)
    held = service.held_count(user, actor)
    if args.json:
        print(json.dumps({**found.to_jsonable(), "held": held}, indent=2))
        return 0
    print(
        f"user {found.user}: time zone {found.zone}, quiet hours {window_label(found, service.clock())}"
        f"{f', {held} held for the digest' if held else ''}"
    )
    for kind, label in KINDS.items():
        print(f"  {label}: {found.mode(kind)}")
    return 0
