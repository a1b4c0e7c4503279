"""What the bot shows of the track record: the /track reply (the table in <pre>) and the lines a
completed card gets (escaped here, once)."""

from html import escape

from analysis.track.model import MIN_INDEPENDENT
from analysis.track.service import GroupTrack
from analysis.track.table import table_text

MAX_GROUPS = 4  # tables in one reply (Telegram's 4096 characters); narrow with /track <strategy> <tf>


def tracks_text(tracks: list[GroupTrack], strategy: str | None, timeframe: str | None) -> str:
    asked = " ".join(x for x in (strategy, timeframe) if x)
    if not tracks:
        return (
            f"No pick records{' of ' + escape(asked) if asked else ''} yet. Every completed "
            f"analysis leaves one; it is scored once its horizons have closed, and the track "
            f"record needs {MIN_INDEPENDENT} independent picks per horizon."
        )
    parts = [
        f"<b>Track record</b>{' · ' + escape(asked) if asked else ''} — does the top K beat "
        "the universe? (95% intervals; entry one bar after each pick)"
    ]
    parts += [f"<pre>{escape(table_text(track))}</pre>" for track in tracks[:MAX_GROUPS]]
    if len(tracks) > MAX_GROUPS:
        parts.append(
            f"… and {len(tracks) - MAX_GROUPS} more: narrow it with /track &lt;strategy&gt; &lt;timeframe&gt;"
        )
    return "\n".join(parts)


def track_caption(track: GroupTrack, horizon: int) -> str:
    return (
        f"Track record {escape(track.title)}: cumulative top-{track.k} excess vs the "
        f"baselines and IC per pick, {horizon} bar{'s' if horizon > 1 else ''} ahead"
    )


def card_track_lines(lines: list[str]) -> str:
    """The track lines appended to a completed card ('' when there are none)."""
    shown = [escape(line) for line in lines if line]
    return ("\n" + "\n".join(shown)) if shown else ""
