"""The Why button and /why (issue 22): why each market ranks where it does, through the service."""

import asyncio

from telegram import Update
from telegram.ext import ContextTypes

from bot import why_views
from bot.guards import TRADER, guarded
from bot.parsing import UsageError, command_text
from bot.services import services

WHY_USAGE = "give an analysis id and, for one market in full, its symbol: /why k3f9a2 BTC/USDT"


@guarded(TRADER)
async def why(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/why <id> [SYMBOL]: the top K with their reasons, or one market in full."""
    s = services(context)
    words = command_text(update.effective_message.text).split()
    if not 1 <= len(words) <= 2:
        raise UsageError(WHY_USAGE)
    actor = s.access.actor(update.effective_user)
    if len(words) == 1:
        gist = await asyncio.to_thread(s.service.get, words[0], actor)
        text = why_views.why_text(gist)
    else:
        document = await asyncio.to_thread(s.service.explain, words[0], actor, words[1])
        text = why_views.why_market_text(document)
    await update.effective_message.reply_text(text)


async def send_why(update: Update, context: ContextTypes.DEFAULT_TYPE, analysis_id: str) -> None:
    """Why button (already parsed and authorized by handlers.button): answer, then send the reasons."""
    s, query = services(context), update.callback_query
    gist = await asyncio.to_thread(s.service.get, analysis_id, s.access.actor(update.effective_user))
    await query.answer()
    await context.bot.send_message(update.effective_chat.id, why_views.why_text(gist))
