"""Handlers of /schedule, /schedules, /unschedule and the Remove and Resume buttons: parse, call the
schedule service as the user, render with `schedule_views`."""

import asyncio
import logging
from html import escape

from telegram import Message, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from analysis.schedules.model import PAUSED
from analysis.service import Actor
from bot import callbacks, export_handlers, schedule_views, views
from bot.guards import (
    TRADER,
    TRADER_OR_GROUP_ADMIN,
    admin_of_this_group,
    guarded,
    log_refusal,
    parse_press,
    shown_callback_data,
)
from bot.notifier import NOT_MODIFIED
from bot.parsing import UsageError, command_text, parse_schedule_args, schedule_id_arg
from bot.schedule_cards import cannot_post
from bot.services import services
from bot.settings_parsing import take_zone_option

logger = logging.getLogger(__name__)
RESUME_WORD = "resume"  # /schedule resume <id>: no interval is spelt so


@guarded(TRADER)
async def schedule(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/schedule <every> [rank options] [notify=changes] [export=freqtrade]: run this analysis on a
    schedule (UTC); /schedule resume <id>: resume a paused one; /schedule export <id> [off]."""
    s, text = services(context), command_text(update.effective_message.text)
    first, *rest = text.split(maxsplit=1) or [""]
    if first.lower() == RESUME_WORD:
        answer, _ = await resume(update, context, schedule_id_arg(" ".join(rest), "/schedule resume"))
        await update.effective_message.reply_text(escape(answer))
        return
    if first.lower() == export_handlers.EXPORT_WORD:
        await export_handlers.export_command(update, context, " ".join(rest))
        return
    text, export = export_handlers.split_export(text)
    if export is not None:  # checked before anything is written
        export_handlers.refuse_outside_private_chat(update)
        export_handlers.exports(context).check(export)
    text, zone = take_zone_option(text)
    every, notify, options = parse_schedule_args(text)
    actor = s.access.actor(update.effective_user)
    zone = await s.delivery.zone(actor.user_id) if zone.lower() == "local" else zone
    created = await asyncio.to_thread(
        s.schedules.add, every, options, actor, chat_id=update.effective_chat.id, notify=notify, zone=zone
    )
    await update.effective_message.reply_text(schedule_views.added(created))
    if export is not None:
        await export_handlers.export_command(update, context, f"{created.id} {export}")


@guarded(TRADER_OR_GROUP_ADMIN)
async def schedules(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/schedules [all]: your schedules (admins: everyone's) with their next run and buttons."""
    scope = command_text(update.effective_message.text).lower()
    if scope not in ("", "all"):
        raise UsageError("/schedules lists yours; admins may ask for /schedules all")
    group = await admin_of_this_group(update, context) if scope == "" else None
    if group is not None:  # a group's admin, in the group: what posts there, whoever made it
        s = services(context)
        found = await asyncio.to_thread(s.schedules.list_for_chat, group)
        next_runs = await asyncio.to_thread(s.schedules.next_runs, found)
        await update.effective_message.reply_text(schedule_views.group_schedules_text(found, next_runs))
        return
    text, keyboard = await listing(update, context, scope == "all")
    await update.effective_message.reply_text(text, reply_markup=keyboard)


async def listing(
    update: Update, context: ContextTypes.DEFAULT_TYPE, everyone: bool, owner: str | None = None
):
    """(text, keyboard) of the schedules the user may see; with `owner`, that user's own list (the
    list an admin pressed a button under)."""
    s = services(context)
    actor = Actor(owner) if owner is not None else s.access.actor(update.effective_user)
    found = await asyncio.to_thread(s.schedules.list, actor, everyone=everyone)
    next_runs = await asyncio.to_thread(s.schedules.next_runs, found)
    zone = await s.delivery.zone(str(update.effective_user.id))  # the viewer's
    return (
        schedule_views.schedules_text(found, next_runs, everyone, zone=zone),
        schedule_views.schedules_keyboard(found, everyone),
    )


@guarded(TRADER_OR_GROUP_ADMIN)
async def unschedule(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unschedule <id>: remove one of your schedules (admins: anyone's; in a group, its admins:
    any that posts there)."""
    s = services(context)
    schedule_id = schedule_id_arg(command_text(update.effective_message.text))
    group = await admin_of_this_group(update, context)  # its admins may remove what posts there
    gone = await asyncio.to_thread(
        s.schedules.remove, schedule_id, s.access.actor(update.effective_user), chat_admin_of=group
    )
    await update.effective_message.reply_text(schedule_views.removed(gone))


async def remove(update: Update, context: ContextTypes.DEFAULT_TYPE, schedule_id: str) -> tuple[str, str]:
    """Remove as the user (owner or admin); the answer (plain text) and the schedule's owner."""
    s = services(context)
    gone = await asyncio.to_thread(s.schedules.remove, schedule_id, s.access.actor(update.effective_user))
    return f"Removed schedule {gone.id}.", gone.owner


async def resume(update: Update, context: ContextTypes.DEFAULT_TYPE, schedule_id: str) -> tuple[str, str]:
    """Resume as the user (owner or admin); the answer (plain text) and the schedule's owner.
    The schedule's chat is asked first whether the bot may post there (even when the command
    came from it: a group can let members write and still mute the bot)."""
    s = services(context)
    actor = s.access.actor(update.effective_user)
    found = await asyncio.to_thread(s.schedules.get, schedule_id, actor)
    if found.state == PAUSED and found.chat_id is not None:
        refused = await cannot_post(context.bot, found.chat_id)
        if refused:
            return (
                f"Schedule {found.id} stays paused: the bot still may not post in its chat ({refused}).",
                found.owner,
            )
    result = await asyncio.to_thread(s.schedules.resume, found.id, actor)
    next_runs = await asyncio.to_thread(s.schedules.next_runs, [result.schedule])
    zone = await s.delivery.zone(actor.user_id)
    return schedule_views.resume_answer(result, next_runs.get(found.id), zone), found.owner


BUTTON_ACTIONS = {callbacks.REMOVE: remove, callbacks.RESUME: resume}


@guarded(TRADER)
async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A Remove or Resume button: parse strictly, check where it was pressed, act as the presser
    (owner or admin), answer, re-list."""
    query = update.callback_query
    press = await parse_press(update, callbacks.parse_schedule)
    if press is None or await refused_press(update, context, press):
        return
    answer, owner = await BUTTON_ACTIONS[press.action](update, context, press.schedule_id)
    await query.answer(answer)
    if isinstance(query.message, Message):
        # A list of one user's schedules stays that user's list, whoever (an admin) pressed.
        text, keyboard = await listing(update, context, press.everyone, None if press.everyone else owner)
        try:
            await query.edit_message_text(text, reply_markup=keyboard)
        except BadRequest as err:  # a second tap: the list already shows it
            if NOT_MODIFIED not in err.message.lower():
                raise


async def refused_press(
    update: Update, context: ContextTypes.DEFAULT_TYPE, press: callbacks.SchedulePress
) -> bool:
    """Refuse (logged, answered) a press on a message that does not show that button, or under
    an admin's list by someone who is not an admin."""
    query = update.callback_query
    if query.data is None or query.data not in shown_callback_data(query.message):
        # Forged data on another message (a card, someone's list): the edit would overwrite it.
        log_refusal(update, "schedule button pressed on a message that does not show it")
        await query.answer(views.STALE_BUTTON)
        return True
    if press.everyone and not services(context).access.is_admin(update.effective_user.id):
        log_refusal(update, "not an admin (the list is /schedules all)")
        await query.answer(schedule_views.ADMINS_LIST)
        return True
    return False
