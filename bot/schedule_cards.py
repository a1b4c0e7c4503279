"""Scheduled runs in the chat where their schedule was made: the notifier asks here whether and
where a run's first card goes, and tells here when that chat has blocked the bot (the schedule is
then paused with the reason, which its owner sees in /schedules); a resume from another chat asks
here whether the bot may post in the schedule's chat again."""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, TelegramError

from analysis.models import Gist
from analysis.schedules.service import ScheduleService

logger = logging.getLogger(__name__)


CHAT_GONE = "chat not found"  # Telegram's words for a deleted group (400)
LEFT = ("left", "kicked")  # getChatMember statuses of someone no longer in the group
MAX_CHECKED = 1000


class ScheduledCards:
    def __init__(self, schedules: ScheduleService):
        self.schedules = schedules
        self._checked: dict[str, bool] = {}  # run id -> its owner may post (asked once per run)

    def destination(self, analysis_id: str) -> int | None:
        """The chat to post this run's card in now, or None: not a scheduled run, a schedule of
        the CLI, a paused schedule (its chat may have blocked the bot), or `notify=changes` and
        nothing to tell (yet). Blocking (Redis); an analysis of no schedule costs one HGET."""
        return self.schedules.chat_for_run(analysis_id)

    async def owner_may_post(self, bot: Bot, analysis_id: str, chat_id: int) -> bool:
        """Before a scheduled run's card goes into a group: is the schedule's owner still a member
        (getChatMember, once per run)? If not, or the group is gone, the schedule is paused with
        the reason and its owner told in private. A network error lets the run post (asked again
        at the next run)."""
        if chat_id > 0:
            return True
        if analysis_id not in self._checked:
            view = await asyncio.to_thread(self.schedules.analyses.card_view, analysis_id)
            gist = view.gist if view is not None else None
            owner = gist.owner if gist is not None else ""
            problem = await not_a_member(bot, chat_id, int(owner)) if owner.isdigit() else None
            if problem is not None and gist is not None:
                await self._pause_and_tell(bot, gist, chat_id, problem)
            if len(self._checked) >= MAX_CHECKED:
                self._checked.pop(next(iter(self._checked)))
            self._checked[analysis_id] = problem is None
        return self._checked[analysis_id]

    async def _pause_and_tell(self, bot: Bot, gist: Gist, chat_id: int, problem: str) -> None:
        await asyncio.to_thread(self.schedules.pause, gist.schedule, f"{problem} (chat {chat_id})")
        logger.info(
            "[%s] not posted in chat %s: schedule %s paused (%s)", gist.id, chat_id, gist.schedule, problem
        )
        try:
            await bot.send_message(
                int(gist.owner),
                (
                    f"Schedule <code>{gist.schedule}</code> is paused and posts nothing more in chat "
                    f"{chat_id}: {problem}. Resume it with /schedule resume {gist.schedule} once that "
                    f"changes, or remove it with /unschedule {gist.schedule}."
                ),
            )
        except TelegramError as err:
            logger.info("owner %s of schedule %s not told (%s)", gist.owner, gist.schedule, err)

    async def chat_blocked(self, gist: Gist, description: str) -> None:
        """Telegram refused to post this run's card (Forbidden): pause its schedule."""
        if gist.schedule:
            await asyncio.to_thread(
                self.schedules.pause,
                gist.schedule,
                f"the bot may not post in the schedule's chat ({description})",
            )


async def cannot_post(bot: Bot, chat_id: int) -> str | None:
    """Why the bot may not post in `chat_id` now (Telegram's words), or None if it may. Asked
    with a typing action, which leaves nothing in the chat."""
    try:
        await bot.send_chat_action(chat_id, ChatAction.TYPING)
    except (Forbidden, BadRequest) as err:
        return err.message
    return None


async def not_a_member(bot: Bot, chat_id: int, user_id: int) -> str | None:
    """Why a schedule of `user_id` may no longer post in the group `chat_id`: its owner left or
    was removed, or the group is gone; None while a member, or when Telegram cannot tell now (a
    network error)."""
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except BadRequest as err:
        return "the group no longer exists" if CHAT_GONE in err.message.lower() else None
    except Forbidden:
        return "the bot is no longer in the group"
    except TelegramError as err:
        logger.warning("membership of %s in chat %s not known: %s", user_id, chat_id, err)
        return None
    if member.status in LEFT or getattr(member, "is_member", True) is False:
        return "its owner is no longer a member of the group"
    return None
