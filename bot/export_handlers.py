"""`/schedule export <id> [freqtrade|freqtrade-futures|off]` and `/schedule ... export=freqtrade`:
hand a schedule's top K to freqtrade (analysis/export.py, docs/export.md). The token is shown once,
and only in a private chat with the bot: in a group every member would read it."""

from __future__ import annotations

import asyncio
import json
import re
from html import escape

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from analysis.export import ExportService, Issued, refresh_period_s
from bot.parsing import UsageError
from bot.services import services

EXPORT_WORD, OFF = "export", "off"
USAGE = "use /schedule export <id> [freqtrade|freqtrade-futures|off], e.g. /schedule export q7m2k9xa"
_EXPORT_OPTION = re.compile(r"(?:^|\s)export=(\S*)", re.IGNORECASE)


def split_export(text: str) -> tuple[str, str | None]:
    """'4h top=5 export=freqtrade' -> ('4h top=5', 'freqtrade'); no export= -> (text, None)."""
    found = _EXPORT_OPTION.findall(text)
    if len(found) > 1:
        raise UsageError("export is given twice")
    if not found:
        return text, None
    return _EXPORT_OPTION.sub(" ", text).strip(), found[0].lower()


def exports(context: ContextTypes.DEFAULT_TYPE) -> ExportService:
    return ExportService(services(context).schedules)


def refuse_outside_private_chat(update: Update) -> None:
    if update.effective_chat.type != ChatType.PRIVATE:
        raise UsageError(
            "an export token is shown only in a private chat with the bot: send the command there"
        )


async def export_command(update: Update, context: ContextTypes.DEFAULT_TYPE, args: str) -> None:
    """/schedule export <id> [format|off]: a new token (the old one stops working), or off."""
    words = args.split()
    if len(words) not in (1, 2):
        raise UsageError(USAGE)
    schedule_id, fmt = words[0], (words[1].lower() if len(words) == 2 else "freqtrade")
    actor = services(context).access.actor(update.effective_user)
    if fmt == OFF:
        schedule = await asyncio.to_thread(exports(context).revoke, schedule_id, actor)
        await update.effective_message.reply_text(
            f"Export of schedule <code>{escape(schedule.id)}</code> is off: its token gets 401 from now on."
        )
        return
    refuse_outside_private_chat(update)
    exports(context).check(fmt)
    issued = await asyncio.to_thread(exports(context).enable, schedule_id, actor, fmt)
    await update.effective_message.reply_text(issued_text(issued))


def issued_text(issued: Issued) -> str:
    """The URL, the token (once), and the freqtrade config that uses them."""
    schedule = issued.schedule
    snippet = json.dumps(
        {
            "method": "RemotePairList",
            "mode": "whitelist",
            "pairlist_url": issued.url,
            "bearer_token": issued.token,
            "number_assets": int(schedule.options.get("top_k") or 0) or 10,
            "refresh_period": refresh_period_s(schedule),
            "keep_pairlist_on_failure": True,
        },
        indent=1,
    )
    return (
        f"Export of schedule <code>{escape(schedule.id)}</code> for {escape(schedule.export)}.\n"
        f"URL: <code>{escape(issued.url)}</code>\n"
        f"Token (shown this once; keep it secret): <code>{escape(issued.token)}</code>\n"
        f"In freqtrade's config, <code>pairlists</code>:\n<pre>{escape(snippet)}</pre>\n"
        f"Revoke it with /schedule export {escape(schedule.id)} off."
    )
