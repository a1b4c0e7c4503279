"""Handlers of /schedule, /schedules, /unschedule and the Remove buttons: parse, call the
schedule service as the user, render with `schedule_views`."""

import asyncio
import logging

from telegram import MaybeInaccessibleMessage, Message, Update
from telegram.ext import ContextTypes

from bot import schedule_callbacks, schedule_views, views
from bot.guards import TRADER, guarded, log_refusal, parse_press
from bot.parsing import UsageError, command_text, parse_schedule_args, schedule_id_arg
from bot.services import services

logger = logging.getLogger(__name__)


@guarded(TRADER)
async def schedule(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/schedule <every> [rank options] [notify=changes]: run this analysis on a schedule (UTC)."""
    s = services(context)
    every, notify, options = parse_schedule_args(command_text(update.effective_message.text))
    created = await asyncio.to_thread(s.schedules.add, every, options, s.access.actor(update.effective_user),
                                      chat_id=update.effective_chat.id, notify=notify)
    await update.effective_message.reply_text(schedule_views.added(created))


@guarded(TRADER)
async def schedules(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/schedules [all]: your schedules (admins: everyone's) with their next run and Remove buttons."""
    scope = command_text(update.effective_message.text).lower()
    if scope not in ("", "all"):
        raise UsageError("/schedules lists yours; admins may ask for /schedules all")
    text, keyboard = await listing(update, context, scope == "all")
    await update.effective_message.reply_text(text, reply_markup=keyboard)


async def listing(update: Update, context: ContextTypes.DEFAULT_TYPE, everyone: bool):
    """(text, keyboard) of the schedules the user may see."""
    s = services(context)
    found = await asyncio.to_thread(s.schedules.list, s.access.actor(update.effective_user), everyone=everyone)
    next_runs = await asyncio.to_thread(s.schedules.next_runs, found)
    return (schedule_views.schedules_text(found, next_runs, everyone),
            schedule_views.remove_keyboard(found, everyone))


@guarded(TRADER)
async def unschedule(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unschedule <id>: remove one of your schedules (admins: anyone's)."""
    s = services(context)
    schedule_id = schedule_id_arg(command_text(update.effective_message.text))
    gone = await asyncio.to_thread(s.schedules.remove, schedule_id, s.access.actor(update.effective_user))
    await update.effective_message.reply_text(schedule_views.removed(gone))


@guarded(TRADER)
async def remove_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A Remove button: parse strictly, remove as the presser (owner or admin), answer, re-list."""
    query, s = update.callback_query, services(context)
    press = await parse_press(update, schedule_callbacks.parse)
    if press is None:
        return
    if not carries_the_pressed_button(query.message, query.data):
        # Forged data on another message (a card, someone's list): the edit below would overwrite it.
        log_refusal(update, "schedule button pressed on a message that does not show it")
        await query.answer(views.STALE_BUTTON)
        return
    if press.everyone and not s.access.is_admin(update.effective_user.id):
        log_refusal(update, "not an admin (the list is /schedules all)")
        await query.answer(schedule_views.ADMINS_LIST)
        return
    gone = await asyncio.to_thread(s.schedules.remove, press.schedule_id, s.access.actor(update.effective_user))
    await query.answer(f"Removed schedule {gone.id}.")
    if isinstance(query.message, Message):
        text, keyboard = await listing(update, context, press.everyone)
        await query.edit_message_text(text, reply_markup=keyboard)


def carries_the_pressed_button(message: MaybeInaccessibleMessage | None, data: str | None) -> bool:
    """Whether the pressed message shows a button with exactly this data: its buttons come from
    Telegram, the data from the client (which can send any data with any message)."""
    if not isinstance(message, Message) or message.reply_markup is None:
        return False
    return any(key.callback_data == data for row in message.reply_markup.inline_keyboard for key in row)
