"""/maintenance on|off|status (admins): the bot's face of analysis/maintenance.py, for a deploy."""

import asyncio
from html import escape

from telegram import Update
from telegram.ext import ContextTypes

from analysis.errors import InvalidConfig, quoted
from analysis.maintenance import MaintenanceService, describe
from analysis.service import Actor
from bot.guards import ADMIN, guarded
from bot.parsing import command_text
from bot.services import services

USAGE = "use /maintenance on, /maintenance off or /maintenance status"


@guarded(ADMIN)
async def maintenance(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/maintenance on|off|status: stop new work for a deploy, resume it, or see what still runs."""
    s, message, user = services(context), update.effective_message, update.effective_user
    assert message is not None and user is not None  # @guarded lets only those through
    word = command_text(message.text).strip().lower()
    if word not in ("on", "off", "status"):
        raise InvalidConfig(f"{quoted(word)} is not a maintenance action: {USAGE}" if word else USAGE)
    text = await asyncio.to_thread(run, MaintenanceService(s.service), word, s.access.actor(user))
    await message.reply_text(escape(text))


def run(maintenance: MaintenanceService, word: str, actor: Actor) -> str:
    if word == "status":
        return describe(maintenance.status())
    change = maintenance.on(actor) if word == "on" else maintenance.off(actor)
    return f"{change.message}\n{describe(maintenance.status())}"
