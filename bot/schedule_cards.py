"""Scheduled runs in the chat where their schedule was made: the notifier asks here whether and
where a run's first card goes, and tells here when that chat has blocked the bot (the schedule is
then paused with the reason, which its owner sees in /schedules); a resume from another chat asks
here whether the bot may post in the schedule's chat again."""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden

from analysis.engine.replies import text
from analysis.models import Gist, Status
from analysis.schedule_changes import has_alerts, run_changes
from analysis.schedule_service import ScheduleService
from analysis.schedules import ACTIVE

logger = logging.getLogger(__name__)


class ScheduledCards:
    def __init__(self, schedules: ScheduleService):
        self.schedules = schedules

    def destination(self, analysis_id: str) -> int | None:
        """The chat to post this run's card in now, or None: not a scheduled run, a schedule of
        the CLI, a paused schedule (its chat may have blocked the bot), or `notify=changes` and
        nothing to tell (yet). Blocking (Redis); an analysis of no schedule costs one HGET."""
        store = self.schedules.analyses.store
        schedule_id = store.redis.hget(store.keys.gist(analysis_id), "schedule")
        if not schedule_id:
            return None
        schedule = self.schedules.store.get(text(schedule_id))
        if schedule is None or schedule.chat_id is None or schedule.state != ACTIVE:
            return None
        if schedule.notify == "changes":
            gist = store.load(analysis_id)
            if gist is None or not gist.status.is_final:
                return None
            if gist.status == Status.COMPLETED:
                changes = run_changes(store, gist)
                if changes["against"] and not has_alerts(changes):
                    logger.info("[%s] no market entered or left the top since %s: recorded, "
                                "not posted (schedule %s)",
                                gist.id, changes["against"], gist.schedule)
                    return None
        return schedule.chat_id

    async def chat_blocked(self, gist: Gist, description: str) -> None:
        """Telegram refused to post this run's card (Forbidden): pause its schedule."""
        if gist.schedule:
            await asyncio.to_thread(self.schedules.pause, gist.schedule,
                                    f"the bot may not post in the schedule's chat ({description})")


async def cannot_post(bot: Bot, chat_id: int) -> str | None:
    """Why the bot may not post in `chat_id` now (Telegram's words), or None if it may. Asked
    with a typing action, which leaves nothing in the chat."""
    try:
        await bot.send_chat_action(chat_id, ChatAction.TYPING)
    except (Forbidden, BadRequest) as err:
        return err.message
    return None
