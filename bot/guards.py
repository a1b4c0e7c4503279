"""Authorization and user-fit errors around every handler.

`@guarded(TRADER)` / `@guarded(ADMIN)` checks the user before the handler runs; a refusal gets a
short polite answer (a reply, or the callback answer for a button), changes nothing and is
logged with the user id and the action. Inside, an `AnalysisError` (its text is fit for a user)
becomes the answer; every other exception reaches the application's error handler.
"""

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from telegram import Chat, MaybeInaccessibleMessage, Message, Update
from telegram.constants import ChatID
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from analysis.errors import AnalysisError, NotAllowed, NotFound
from bot import callbacks, settings_callbacks, views
from bot.services import Access, services

logger = logging.getLogger(__name__)
P = TypeVar("P")

TRADER, ADMIN = "trader", "admin"
# A trader, or (in a group) an admin of that group who is not an allowed user: they may see and
# remove the schedules that post there (/schedules, /unschedule), nothing else.
TRADER_OR_GROUP_ADMIN = "trader_or_group_admin"
SHARED_SENDERS = frozenset(int(i) for i in ChatID)  # anonymous admin, service chat, channel bot
SCHEDULE_ACTIONS = {callbacks.REMOVE: "remove-schedule", callbacks.RESUME: "resume-schedule"}
Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


def action_of(update: Update) -> str:
    """What the user tried, for logs: the command word or the button's action (never arguments)."""
    if update.callback_query is not None:
        press = callbacks.parse(update.callback_query.data)
        schedule_press = callbacks.parse_schedule(update.callback_query.data)
        if press is None and schedule_press is not None:
            return f"button {SCHEDULE_ACTIONS[schedule_press.action]}"
        if press is None and settings_callbacks.parse(update.callback_query.data) is not None:
            return "button settings"
        return f"button {press.action}" if press else "button <invalid data>"
    text = update.effective_message.text if update.effective_message else ""
    return (text or "").split(maxsplit=1)[0][:40] if text else "<no text>"


def log_refusal(update: Update, reason: str) -> None:
    user = update.effective_user
    logger.warning(
        "refused: user=%s action=%s reason=%s", user.id if user else None, action_of(update), reason
    )


def shown_callback_data(message: MaybeInaccessibleMessage | None) -> list[str]:
    """The callback data of the buttons the pressed message shows. Telegram sends the message with
    the press, so these are trustworthy; the press's own data comes from the client."""
    if not isinstance(message, Message) or message.reply_markup is None:
        return []
    return [
        key.callback_data
        for row in message.reply_markup.inline_keyboard
        for key in row
        if isinstance(key.callback_data, str)
    ]


async def parse_press(update: Update, parse: Callable[[str | None], P | None]) -> P | None:
    """A button's callback data parsed strictly; data that does not parse (stale or forged) is
    logged, answered as a stale button, and None comes back."""
    query = update.callback_query
    assert query is not None, "parse_press is for button handlers"
    press = parse(query.data)
    if press is None:
        log_refusal(update, "invalid callback data")
        await query.answer(views.STALE_BUTTON)
    return press


async def answer(update: Update, html: str, plain: str) -> None:
    """Reply to the command with `html`, or answer the button press with `plain` (not parsed)."""
    if update.callback_query is not None:
        await update.callback_query.answer(plain)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(html)


def sent_on_behalf_of_a_chat(update: Update) -> bool:
    """A message an anonymous group admin or a channel sent: Telegram gives all of them the same
    few user ids (1087968824 for every anonymous admin), so such a sender cannot own anything."""
    user, message = update.effective_user, update.message
    return (user is not None and user.id in SHARED_SENDERS) or (
        message is not None and message.sender_chat is not None
    )


def refusal(access: Access, update: Update, role: str) -> tuple[str, str] | None:
    """(reason for the log, text for the user) when the sender may not act in `role`."""
    user = update.effective_user
    if sent_on_behalf_of_a_chat(update):
        return "sent on behalf of a chat", views.POST_AS_YOURSELF
    if user is None or not access.may_trade(user.id):
        return "not an allowed user", views.not_allowed_user(user.id if user else None)
    if role == ADMIN and not access.is_admin(user.id):
        return "not an admin", views.NOT_ADMIN
    return None


def guarded(role: str) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded_handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            refused = refusal(services(context).access, update, role)
            if (
                refused is not None
                and role == TRADER_OR_GROUP_ADMIN
                and not sent_on_behalf_of_a_chat(update)
                and await admin_of_this_group(update, context)
            ):
                refused = None
            if refused is not None:
                log_refusal(update, refused[0])
                await answer(update, refused[1], refused[1])
                return
            try:
                await handler(update, context)
            except AnalysisError as err:
                if isinstance(err, NotAllowed) or (isinstance(err, NotFound) and update.callback_query):
                    log_refusal(update, str(err))
                await answer(update, views.error_text(err), views.button_refusal(err))

        return guarded_handler

    return decorate


async def admin_of_this_group(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    """The group this update was sent in, if its sender is an admin of it now (asked from
    Telegram with getChatAdministrators, never remembered); None otherwise."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None or chat.type not in (Chat.GROUP, Chat.SUPERGROUP):
        return None
    try:
        admins = await context.bot.get_chat_administrators(chat.id)
    except TelegramError as err:
        logger.info("admins of chat %s not known (%s): %s is not taken for one", chat.id, err, user.id)
        return None
    return chat.id if any(admin.user.id == user.id for admin in admins) else None
