"""What the bot shows about schedules: pure functions to Telegram HTML and keyboards. Times are in
the viewer's zone (UTC unless /settings says otherwise) with their UTC offset."""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from analysis.local_time import shown_time
from analysis.schedules.model import ACTIVE, PAUSED, Schedule
from analysis.schedules.service import ResumeResult
from bot import callbacks

MAX_BUTTONS = 20
MAX_MOVES = 5  # rank moves shown on a card; status --json has them all
ADMINS_LIST = "That list is an admin's view: manage your schedules from /schedules."


def utc(ts: float | None, zone: str = "UTC") -> str:
    """A time as every schedule view shows it (the name stays: it was UTC only before #24)."""
    return shown_time(ts, zone)


def added(schedule: Schedule) -> str:
    first = (
        "The first run starts now."
        if schedule.every.interval_s
        else f"The first run is at the next matching minute ({escape(schedule.every.zone or 'UTC')})."
    )
    posts = (
        "Runs whose top changed are posted here."
        if schedule.notify == "changes"
        else "Each run is posted here."
    )
    return (
        f"Scheduled <code>{escape(schedule.id)}</code>: every {escape(schedule.every.text)} "
        f"({escape(schedule.every.zone or 'UTC')}) · "
        f"{escape(schedule.summary)}.\n{first} {posts} Each card says what changed since the "
        f"previous run.\nSee /schedules; stop it with /unschedule {escape(schedule.id)}."
    )


def removed(schedule: Schedule) -> str:
    return f"Removed schedule <code>{escape(schedule.id)}</code> (every {escape(schedule.every.text)})."


def schedules_text(
    schedules: list[Schedule],
    next_runs: dict[str, float],
    everyone: bool,
    heading: str | None = None,
    zone: str = "UTC",
) -> str:
    if not schedules:
        return (
            "No schedules."
            if everyone
            else "You have no schedules. Add one with /schedule 4h markets=30 top=10 (times in UTC)."
        )
    lines = [
        f"<b>{heading or ('All schedules' if everyone else 'Your schedules')}</b> (times in {escape(zone)})"
    ]
    for s in schedules:
        owner = f" · owner {escape(s.owner)}" if everyone else ""
        when = (
            f"next {utc(next_runs.get(s.id), zone)}"
            if s.state == ACTIVE
            else f"⏸ paused: {escape(s.reason[:200])}"
        )
        last = f" · last <code>{escape(s.last_analysis)}</code>" if s.last_analysis else ""
        notify = " · only changes" if s.notify == "changes" else ""
        lines.append(
            f"<code>{escape(s.id)}</code> every {escape(s.every.shown())} · {escape(s.summary)}"
            f"{notify}{owner}\n   {when} · {s.runs} runs{last}"
        )
        if s.note and s.state == ACTIVE:
            lines.append(f"   note: {escape(s.note[:200])}")
    if any(s.state == PAUSED for s in schedules):
        lines.append("\nResume a paused one with its button or /schedule resume &lt;id&gt;.")
    if len(schedules) > MAX_BUTTONS:
        lines.append(f"\nButtons for the first {MAX_BUTTONS}; remove others with /unschedule &lt;id&gt;.")
    return "\n".join(lines)


def schedules_keyboard(schedules: list[Schedule], everyone: bool) -> InlineKeyboardMarkup | None:
    """Remove under each schedule, with Resume beside it under a paused one."""

    def button(action: str, label: str, schedule: Schedule) -> InlineKeyboardButton:
        data = callbacks.encode_schedule(action, schedule.id, everyone)
        return InlineKeyboardButton(f"{label} {schedule.id}", callback_data=data)

    rows = [
        ([button(callbacks.RESUME, "Resume", s)] if s.state == PAUSED else [])
        + [button(callbacks.REMOVE, "Remove", s)]
        for s in schedules[:MAX_BUTTONS]
    ]
    return InlineKeyboardMarkup(rows) if rows else None


def resume_answer(result: ResumeResult, next_run: float | None, zone: str = "UTC") -> str:
    """Plain text: what a resume did, and when the schedule runs next if it is active."""
    schedule_id = result.schedule.id
    if result.resumed:
        return f"Resumed schedule {schedule_id}: next run {utc(next_run, zone)}."
    if result.already:
        return f"Schedule {schedule_id} is already active: next run {utc(next_run, zone)}."
    return result.message


def changes_lines(schedule_id: str, changes: dict | None, complete: bool) -> list[str]:
    """The card's lines for a scheduled run: which schedule, and (once complete) what changed
    since its previous run."""
    lines = [f"Scheduled run of <code>{escape(schedule_id)}</code>"]
    if changes is None or not complete:
        return lines
    if not changes["against"]:
        return lines + ["First run of this schedule: nothing to compare yet."]
    alerts = changes.get("alerts") or {}
    if alerts.get("entered"):
        lines.append("Entered the top: " + ", ".join(escape(s) for s in alerts["entered"]))
    if alerts.get("left"):
        lines.append("Out of the top: " + ", ".join(escape(s) for s in alerts["left"]))
    if not (changes["entered"] or changes["left"] or changes["moved"]):
        return lines + [f"No change in the top since the previous run ({escape(changes['against'][:6])})."]
    lines.append(f"<b>Since the previous run</b> ({escape(changes['against'][:6])}):")
    if changes["entered"]:
        lines.append("New in the top: " + ", ".join(escape(s) for s in changes["entered"]))
    if changes["left"]:
        lines.append("Left the top: " + ", ".join(escape(s) for s in changes["left"]))
    moves = list(changes["moved"].items())
    if moves:
        shown = [f"{escape(sym)} {m['old']}→{m['new']}" for sym, m in moves[:MAX_MOVES]]
        more = f" (+{len(moves) - MAX_MOVES} more)" if len(moves) > MAX_MOVES else ""
        lines.append("Moved: " + ", ".join(shown) + more)
    return lines


GROUP_HEADING = "Schedules posting in this group"


def group_schedules_text(schedules: list[Schedule], next_runs: dict[str, float]) -> str:
    """What a group's admin sees with /schedules in the group: every owner's schedules posting
    there, to remove with /unschedule <id>."""
    if not schedules:
        return "No schedule posts in this group."
    return (
        schedules_text(schedules, next_runs, True, heading=GROUP_HEADING)
        + "\nAs an admin of this group you may remove any of them with /unschedule &lt;id&gt;."
    )
