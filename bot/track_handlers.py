"""/track [strategy] [timeframe]: the track record's table and chart (through the track service)."""

import asyncio

from telegram import Update
from telegram.ext import ContextTypes

from analysis.track.service import parse_filters
from bot import track_views
from bot.guards import TRADER, guarded
from bot.parsing import command_text
from bot.services import services
from bot.track_chart import chart_horizon, track_chart_png


@guarded(TRADER)
async def track(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/track [strategy] [timeframe]: IC, top-K excess and hit rate per horizon, baselines beside."""
    s = services(context)
    strategy, timeframe = parse_filters(command_text(update.effective_message.text).split())
    tracks = await asyncio.to_thread(s.track.tracks, strategy, timeframe)
    await update.effective_message.reply_text(track_views.tracks_text(tracks, strategy, timeframe))
    charted = next((t for t in tracks[: track_views.MAX_GROUPS] if t.series), None)
    if charted is not None:
        png = await asyncio.to_thread(track_chart_png, charted)
        horizon = chart_horizon(charted) or 1
        await context.bot.send_photo(
            update.effective_chat.id, photo=png, caption=track_views.track_caption(charted, horizon)
        )
