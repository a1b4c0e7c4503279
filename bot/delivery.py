"""The one place a recipient's settings shape what the bot sends on its own: a run finished, a
schedule's run posted (every run, or changes only), an admin alert. Replies to a user's command
are not shaped: the user is there. A card edit is never held: an edit does not ring.

Each message goes out as its kind's mode says (on; silent = `disable_notification`; off = not
at all); in the recipient's quiet hours it is held in Redis instead, and `_deliver_digests`
sends everything held as one digest per chat, oldest first, once the window has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from telegram import Bot
from telegram.error import Forbidden, TelegramError

from analysis.models import Gist, Status
from analysis.schedules.service import ScheduleService
from analysis.service import CardView
from analysis.user_settings import HOLD, OFF, SILENT, HeldMessage, UserSettingsService
from bot import settings_views, views

logger = logging.getLogger(__name__)
FINISHED_STATUSES = (Status.COMPLETED, Status.FAILED)


class CardViews(Protocol):
    """The analysis service as far as delivery needs it (the notifier passes its own)."""

    def card_view(self, analysis_id: str) -> CardView | None: ...


class Delivery:
    def __init__(
        self,
        bot: Bot,
        settings: UserSettingsService,
        marks,
        *,
        interval_s: float,
        schedules: ScheduleService | None = None,
    ):
        # marks: the card store, whose once-only flags keep one notice per analysis across bots
        self.bot, self.settings, self.marks, self.schedules = bot, settings, marks, schedules
        self.interval_s = interval_s
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._deliver_digests_forever(), name="quiet-hours-digests")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def zone(self, user: str) -> str:
        return await asyncio.to_thread(self.settings.zone, user)

    async def decide(self, user: str, kind: str) -> str:
        return await asyncio.to_thread(self.settings.decide, user, kind)

    async def send(self, user: str, chat_id: int, kind: str, text: str, *, about: str = "-", **kwargs) -> str:
        """Send a new message of `kind` as the user's settings say; what was done (send, silent,
        off, hold). `about`: the analysis id (or cause) for the log. Telegram's errors reach the caller."""
        how = await self.decide(user, kind)
        if how == OFF:
            logger.info(
                "[%s] %s message to chat %s not sent: user %s turned it off", about, kind, chat_id, user
            )
        elif how == HOLD:
            await asyncio.to_thread(self.settings.hold, user, kind, chat_id, text)
            logger.info(
                "[%s] %s message to chat %s held: user %s is in quiet hours", about, kind, chat_id, user
            )
        else:
            await self.bot.send_message(chat_id, text, disable_notification=how == SILENT, **kwargs)
        return how

    # --- the kinds --------------------------------------------------------------------------
    async def scheduled_card(self, service: CardViews, analysis_id: str, chat_id: int) -> str:
        """How a scheduled run's first card goes out: send or silent (the caller posts it), off,
        hold (held once, as a snapshot, when the run has ended; until then nothing)."""
        view = await asyncio.to_thread(service.card_view, analysis_id)
        if view is None:
            return OFF
        gist = view.gist
        schedule = (
            await asyncio.to_thread(self.schedules.store.get, gist.schedule) if self.schedules else None
        )
        kind = "schedule_changes" if schedule is not None and schedule.notify == "changes" else "schedule_run"
        how = await self.decide(gist.owner, kind)
        if how == HOLD and gist.status.is_final and await self.marks.first_mark(gist.id, "held"):
            zone = await self.zone(gist.owner)
            await asyncio.to_thread(
                self.settings.hold, gist.owner, kind, chat_id, views.card_text(gist, view.changes, zone)
            )
            logger.info("[%s] scheduled card held: user %s is in quiet hours", gist.id, gist.owner)
        return how

    async def finished(self, gist: Gist, chat_id: int, zone: str) -> None:
        """Once per analysis and refine (not a scheduled run: its card is its message), tell the
        owner it ended. Called before the card shows the final state, so the notice never comes
        after it."""
        if gist.schedule or gist.status not in FINISHED_STATUSES:
            return
        if not await self.marks.first_mark(gist.id, f"finished:{gist.refine_gen}"):
            return
        try:
            await self.send(
                gist.owner, chat_id, "finished", settings_views.finished_text(gist, zone), about=gist.id
            )
        except TelegramError as exc:
            logger.warning("[%s] finished notice not sent: %s", gist.id, exc)

    async def admin_alert(self, admin_id: int, text: str, cause: str = "-") -> None:
        await self.send(str(admin_id), admin_id, "admin_alerts", text, about=cause)

    # --- quiet hours' digests ---------------------------------------------------------------
    async def _deliver_digests_forever(self) -> None:
        while True:
            try:
                await self.deliver_digests()
            except Exception:  # a failing round is tried again at the next interval
                logger.warning("quiet-hours digests not delivered", exc_info=True)
            await asyncio.sleep(self.interval_s)

    async def deliver_digests(self) -> None:
        """One digest per user and chat for the messages held in quiet hours that have ended."""
        for settings, held in await asyncio.to_thread(self.settings.due_digests):
            by_chat: dict[int, list[HeldMessage]] = {}
            for message in held:
                by_chat.setdefault(message.chat_id, []).append(message)
            for chat_id, messages in by_chat.items():
                silent = all(settings.mode(m.kind) == "silent" for m in messages)
                text = settings_views.digest_text(settings, messages, self.settings.clock())
                try:
                    await self.bot.send_message(chat_id, text, disable_notification=silent)
                    logger.info(
                        "digest of %d held messages sent to chat %s (user %s)",
                        len(messages),
                        chat_id,
                        settings.user,
                    )
                except Forbidden as exc:  # the chat blocked the bot: keeping them would not help
                    logger.warning("digest for user %s dropped: %s", settings.user, exc.message)
                except TelegramError as exc:
                    logger.warning(
                        "digest for user %s not sent (%s); kept for the next round", settings.user, exc
                    )
                    await asyncio.to_thread(self.settings.give_back, settings.user, messages)
