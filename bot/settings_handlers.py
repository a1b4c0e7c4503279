"""/settings and its buttons: a trader's time zone, quiet hours and each kind of message on /
silent / off. Only the user may change their settings (the service checks the presser on every
press); a press on a message that does not show that button is refused."""

import asyncio
import logging
from typing import Any

from telegram import Message, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot import settings_callbacks, settings_views, views
from bot.guards import TRADER, guarded, log_refusal, parse_press, shown_callback_data
from bot.notifier import NOT_MODIFIED
from bot.parsing import command_text
from bot.services import services
from bot.settings_parsing import parse_settings_args

logger = logging.getLogger(__name__)


@guarded(TRADER)
async def settings_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/settings [tz=Europe/Berlin] [quiet=23:00-07:00|off] [finished=on|silent|off ...]: show or change
    yours."""
    s, actor = services(context), services(context).access.actor(update.effective_user)
    changes = parse_settings_args(command_text(update.effective_message.text))
    if changes:
        current = await asyncio.to_thread(lambda: s.user_settings.change(actor.user_id, actor, **changes))
        logger.info("settings of user %s changed: %s", actor.user_id, ", ".join(sorted(changes)))
    else:
        current = await asyncio.to_thread(s.user_settings.get, actor.user_id, actor)
    await update.effective_message.reply_text(
        settings_views.settings_text(current, s.user_settings.clock(), actor.is_admin),
        reply_markup=settings_views.settings_keyboard(current, actor.is_admin),
    )


@guarded(TRADER)
async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A /settings button: parse strictly, check it is on the pressed message, change the
    presser's own settings (anyone else's is refused by the service), answer, redraw."""
    query, s = update.callback_query, services(context)
    press = await parse_press(update, settings_callbacks.parse)
    if press is None:
        return
    if query.data is None or query.data not in shown_callback_data(query.message):
        log_refusal(update, "settings button pressed on a message that does not show it")
        await query.answer(views.STALE_BUTTON)
        return
    actor = s.access.actor(update.effective_user)
    changes: dict[str, dict[str, Any]] = {
        settings_callbacks.MODE: {"modes": {press.kind: press.mode}},
        settings_callbacks.QUIET_OFF: {"quiet": "off"},
        settings_callbacks.ZONE_UTC: {"zone": "UTC"},
    }
    change = changes[press.action]
    current = await asyncio.to_thread(lambda: s.user_settings.change(press.user, actor, **change))
    logger.info("settings of user %s changed by a button: %s", actor.user_id, press.action)
    await query.answer("Saved.")
    if isinstance(query.message, Message):
        try:
            await query.edit_message_text(
                settings_views.settings_text(current, s.user_settings.clock(), actor.is_admin),
                reply_markup=settings_views.settings_keyboard(current, actor.is_admin),
            )
        except BadRequest as err:  # a second tap: the message already shows it
            if NOT_MODIFIED not in err.message.lower():
                raise
