"""What the bot shows about a trader's own settings, and the messages they shape: pure functions
to Telegram HTML and keyboards. Every time goes through `analysis.local_time.shown_time`."""

from __future__ import annotations

import re
from html import escape, unescape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from analysis.local_time import shown_time
from analysis.models import Gist, Status
from analysis.user_settings import ADMIN_KINDS, KINDS, MODES, HeldMessage, UserSettings, window_label
from bot import settings_callbacks

MODE_ICONS = {"on": "🔔", "silent": "🔕", "off": "✖️"}
DIGEST_LIMIT = 3900  # Telegram allows 4096 characters per message
SETTINGS_USAGE = (
    "/settings tz=Europe/Berlin quiet=23:00-07:00 finished=silent schedule_run=on "
    "schedule_changes=off (kinds: on, silent, off; quiet=off, tz=UTC)"
)


def kinds_for(is_admin: bool) -> list[str]:
    return [k for k in KINDS if is_admin or k not in ADMIN_KINDS]


def settings_text(settings: UserSettings, now: float, is_admin: bool) -> str:
    lines = [
        "<b>Your settings</b>",
        f"Time zone: {escape(settings.zone)} (now {escape(shown_time(now, settings.zone, '%H:%M'))})",
        f"Quiet hours: {escape(window_label(settings, now))}"
        + (" — messages then are held and sent as one digest when they end" if settings.quiet else ""),
        "",
    ]
    lines += [f"{MODE_ICONS[settings.mode(k)]} {KINDS[k]}: {settings.mode(k)}" for k in kinds_for(is_admin)]
    lines += [
        "",
        "Tap a kind to switch it on → silent → off. Change the rest with",
        f"<code>{escape(SETTINGS_USAGE)}</code>",
    ]
    return "\n".join(lines)


def settings_keyboard(settings: UserSettings, is_admin: bool) -> InlineKeyboardMarkup:
    def next_mode(kind: str) -> str:
        return MODES[(MODES.index(settings.mode(kind)) + 1) % len(MODES)]

    rows = [
        [
            InlineKeyboardButton(
                f"{KINDS[k]}: {settings.mode(k)} → {next_mode(k)}",
                callback_data=settings_callbacks.encode(
                    settings_callbacks.MODE, settings.user, k, next_mode(k)
                ),
            )
        ]
        for k in kinds_for(is_admin)
    ]
    extra = []
    if settings.quiet is not None:
        extra.append(
            InlineKeyboardButton(
                "Quiet hours off",
                callback_data=settings_callbacks.encode(settings_callbacks.QUIET_OFF, settings.user),
            )
        )
    if settings.zone != "UTC":
        extra.append(
            InlineKeyboardButton(
                "Time zone: UTC",
                callback_data=settings_callbacks.encode(settings_callbacks.ZONE_UTC, settings.user),
            )
        )
    return InlineKeyboardMarkup(rows + ([extra] if extra else []))


def finished_text(gist: Gist, zone: str) -> str:
    """The message that rings when an analysis ends (the card's own edit does not)."""
    title = {"rank": "Ranking", "entry": "Entry analysis", "exit": "Exit analysis"}.get(
        gist.config.kind, "Analysis"
    )
    when = shown_time(gist.updated_at, zone, "%H:%M")
    if gist.status == Status.COMPLETED:
        top = ", ".join(escape(item.symbol) for item in gist.result[:5])
        more = " …" if len(gist.result) > 5 else ""
        return (
            f"✅ {title} <code>{escape(gist.short_id)}</code> completed at {escape(when)}: "
            f"top {len(gist.result)} {top}{more} (confidence {gist.confidence:.2f})."
        )
    return f"⚠️ {title} <code>{escape(gist.short_id)}</code> {gist.status.value.lower()} at {escape(when)}" + (
        f": {escape(gist.reason[:200])}" if gist.reason else "."
    )


def _plain(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


def digest_text(settings: UserSettings, held: list[HeldMessage], now: float) -> str:
    """One message for everything held in the quiet hours, oldest first; each entry says when it
    would have arrived. Cut to Telegram's limit (tags dropped, then text shortened) if need be."""
    head = (
        f"🌙 {len(held)} message{'s' if len(held) != 1 else ''} held during your quiet hours "
        f"({escape(window_label(settings, now))}), oldest first:"
    )
    entries = [
        (
            f"<b>{escape(shown_time(m.at, settings.zone, '%H:%M'))}</b> · "
            f"{escape(KINDS.get(m.kind, m.kind))}",
            m.text,
        )
        for m in held
    ]
    full = "\n\n".join([head] + [f"{title}\n{body}" for title, body in entries])
    if len(full) <= DIGEST_LIMIT:
        return full
    room = max(80, (DIGEST_LIMIT - len(head)) // max(len(entries), 1) - 60)
    parts = [head]
    for shown, (title, body) in enumerate(entries):
        part = f"{title}\n{escape(_plain(body)[:room])}"
        if sum(len(p) + 2 for p in parts) + len(part) > DIGEST_LIMIT - 40:
            parts.append(f"… and {len(entries) - shown} more")
            break
        parts.append(part)
    return "\n\n".join(parts)
