"""Keeps every analysis's status card in step with its gist, inside the bot process.

Progress events come from the Redis stream through a consumer group (AnalysisService.events): an event
is acknowledged only after the card shows a state at least as new as the event, so events that
were read but not shown when the bot stopped are read again when it starts. Workers never talk to
Telegram.

Per analysis, a follower task coalesces bursts: the first event after a quiet spell is shown at
once, later ones at most every `interval_s`, and the newest state always goes out last. Every
edit of one card happens under that card's lock and renders the gist loaded under the lock, so
edits are applied in the order of the states they show and a card never flips back. With several
bot instances, `card_lock` (a short Redis lock per card) makes that hold across instances too.
Telegram's RetryAfter is waited out and the edit retried with the then newest state; "message is
not modified" counts as done; a card that can no longer be edited is replaced by a new message
whose id is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from redis.exceptions import RedisError
from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from analysis.models import Gist, Status
from analysis.service import AnalysisService, EventReader
from analysis.user_settings import SEND, SILENT
from bot import views
from bot.alert_book import ADMIN_ALERT_TEXTS
from bot.card_lock import CardLock
from bot.cards import CardLocation, CardStore
from bot.delivery import Delivery
from bot.schedule_cards import CHAT_GONE, ScheduledCards
from bot.track_views import card_track_lines

logger = logging.getLogger(__name__)

NOT_MODIFIED = "message is not modified"
# Descriptions of an edit that can never succeed on this message: send a new card instead.
GONE = ("message to edit not found", "message can't be edited", "message_id_invalid", "message not found")
MAX_TRACKED = 1000  # idle per-card records kept in memory before the oldest are dropped
STOP_POLL_S = 0.2  # how often stop() cancels the event reader again


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int will become a timedelta
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def keyboard_key(keyboard: InlineKeyboardMarkup) -> tuple:
    return tuple(tuple((b.text, b.callback_data) for b in row) for row in keyboard.inline_keyboard)


def shown_digest(shown: tuple) -> str:
    """A short digest of (location, text, keyboard) for the card's record in Redis."""
    return hashlib.sha256(repr(shown).encode()).hexdigest()[:32]


@dataclass
class _Card:
    """What the bot knows about one analysis's card while it runs."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    unacked: list[str] = field(default_factory=list)  # events waiting for the card to catch up
    dirty: bool = False
    last_edit: float = -math.inf
    shown: tuple | None = None  # (location, text, keyboard) last put on the live card
    follower: asyncio.Task | None = None


class CardNotifier:
    def __init__(
        self,
        bot: Bot,
        service: AnalysisService,
        cards: CardStore,
        events: EventReader,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        scheduled: ScheduledCards | None = None,
        on_admin_event: Callable[[str, str, str], Awaitable[None]] | None = None,
        track_lines: Callable[[Gist], list[str]] | None = None,
        delivery: Delivery | None = None,
        card_lock: CardLock | None = None,
    ):
        self.bot, self.service, self.cards, self.events = bot, service, cards, events
        self.track_lines = track_lines  # a completed card's track record lines (blocking)
        self.delivery = delivery  # the owner's settings: zone of the card, how notices go out
        self.scheduled = scheduled
        self.card_lock = card_lock  # None: this process is the only bot instance
        # (kind, analysis id, reason): admins are told of the events in ADMIN_ALERT_TEXTS
        self.on_admin_event = on_admin_event
        self.interval_s, self.clock = interval_s, clock
        self._cards: dict[str, _Card] = {}
        self._reader: asyncio.Task | None = None
        self._closing = asyncio.Event()

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await self.events.ensure_group()
        self._reader = asyncio.create_task(self._read_forever(), name="card-notifier")

    async def stop(self, grace_s: float = 2.0) -> None:
        """Stop reading; give the followers `grace_s` to put out what they hold, unthrottled.
        Whatever is left stays unacknowledged and is shown after the next start."""
        self._closing.set()
        reader = self._reader
        # A cancellation that lands on the reader's first Redis command can be turned by redis-py
        # (8.2) into an error the reader retries after a pause (seen when stop follows start
        # within milliseconds): cancel until the reader ends; its loop also ends once _closing
        # is set.
        while reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait({reader}, timeout=STOP_POLL_S)
        followers = [c.follower for c in self._cards.values() if c.follower is not None]
        if followers:
            _, late = await asyncio.wait(followers, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # --- for handlers -----------------------------------------------------------------------
    async def post_card(self, chat_id: int, analysis_id: str, *, live: bool = True) -> CardLocation | None:
        """Send a new card for the analysis to `chat_id`. A live card is the one kept up to date
        (it replaces the previous one); otherwise the message is a snapshot."""
        card = self._card(analysis_id)
        async with self._held(analysis_id, card):
            location = await self._put(analysis_id, card, None, chat_id, live=live)
        if live:
            self._note(analysis_id, [])  # catch any change between the render and the save
        return location

    async def show(self, analysis_id: str, chat_id: int | None = None, message_id: int | None = None) -> None:
        """Bring a card up to date now (after a button press or a command): the message pressed
        on if given, else the live card. Unthrottled; best effort, the events catch up."""
        pressed = CardLocation(chat_id, message_id) if chat_id and message_id else None
        card = self._card(analysis_id)
        try:
            async with self._held(analysis_id, card):
                live = await self.cards.get(analysis_id)
                if pressed is not None and live is not None and pressed != live:
                    await self._put(analysis_id, card, pressed, pressed.chat_id, live=False)
                elif live is not None or pressed is not None:
                    target = live if live is not None else pressed
                    assert target is not None
                    if live is None:
                        await self.cards.save(analysis_id, target)
                    await self._put(analysis_id, card, target, target.chat_id, live=True)
        except (BadRequest, Forbidden) as exc:
            logger.warning("[%s] card not updated: %s", analysis_id, exc.message)
        except NetworkError as exc:
            logger.warning("[%s] card not updated (%s); the events will catch up", analysis_id, exc)

    # --- events -----------------------------------------------------------------------------
    async def _read_forever(self) -> None:
        backoff = 0.5
        while not self._closing.is_set():
            try:
                events, malformed = await self.events.read()
                await self.events.ack(malformed)
            except (RedisError, OSError) as exc:
                logger.warning("reading progress events failed (%s); retrying in %.1fs", exc, backoff)
            except Exception:  # a bug must not stop every card for good
                logger.exception("reading progress events failed; retrying in %.1fs", backoff)
            else:
                backoff = 0.5
                by_analysis: dict[str, list[str]] = {}
                for event in events:
                    by_analysis.setdefault(event.analysis_id, []).append(event.entry_id)
                    # the watchdog gave it up, or a step found Redis full: admins are told
                    if event.kind in ADMIN_ALERT_TEXTS and self.on_admin_event is not None:
                        try:
                            await self.on_admin_event(event.kind, event.analysis_id, event.reason)
                        except Exception:  # an alert must never stop the cards
                            logger.exception("[%s] %s alert failed", event.analysis_id, event.kind)
                for analysis_id, entry_ids in by_analysis.items():
                    self._note(analysis_id, entry_ids)
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)

    def _note(self, analysis_id: str, entry_ids: list[str]) -> None:
        card = self._card(analysis_id)
        card.unacked.extend(entry_ids)
        card.dirty = True
        if card.follower is None:
            card.follower = asyncio.create_task(self._follow(analysis_id, card), name=f"card-{analysis_id}")

    async def _follow(self, analysis_id: str, card: _Card) -> None:
        backoff = 0.5
        try:
            while card.dirty:
                delay = card.last_edit + self.interval_s - self.clock()
                if delay > 0 and not self._closing.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), delay)
                card.dirty = False
                entries, card.unacked = card.unacked, []
                try:
                    await self._refresh(analysis_id, card)
                except (BadRequest, Forbidden) as exc:  # never going to work for this card
                    logger.warning("[%s] card not updated: %s", analysis_id, exc.message)
                except (NetworkError, RedisError, OSError) as exc:
                    logger.warning(
                        "[%s] card update failed (%s); retrying in %.1fs", analysis_id, exc, backoff
                    )
                    card.unacked[:0], card.dirty = entries, True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
                    continue
                except Exception:  # a bug (or an unexpected answer): retrying would not help
                    logger.exception("[%s] card not updated", analysis_id)
                backoff = 0.5
                try:
                    await self.events.ack(entries)
                except (RedisError, OSError) as exc:
                    logger.warning(
                        "[%s] ack failed (%s); acknowledging with the next update", analysis_id, exc
                    )
                    card.unacked[:0] = entries
        finally:
            card.follower = None
            self._forget_idle()

    async def _refresh(self, analysis_id: str, card: _Card) -> None:
        async with self._held(analysis_id, card):
            location = await self.cards.get(analysis_id)
            if location is None and self.scheduled is None:
                return
            try:
                if location is not None:
                    await self._put(analysis_id, card, location, location.chat_id, live=True)
                elif self.scheduled is not None:  # a scheduled run's first card: its schedule's chat
                    chat_id = await asyncio.to_thread(self.scheduled.destination, analysis_id)
                    if chat_id is not None and await self.scheduled.owner_may_post(
                        self.bot, analysis_id, chat_id
                    ):
                        how = (
                            SEND
                            if self.delivery is None
                            else await self.delivery.scheduled_card(self.service, analysis_id, chat_id)
                        )
                        if how in (SEND, SILENT):
                            await self._put(analysis_id, card, None, chat_id, live=True, silent=how == SILENT)
            except (Forbidden, BadRequest) as exc:
                # A deleted group (400 "chat not found") pauses its schedule as a block (403) does.
                gone = isinstance(exc, Forbidden) or CHAT_GONE in exc.message.lower()
                view = await asyncio.to_thread(self.service.card_view, analysis_id) if gone else None
                if view is not None and self.scheduled is not None:
                    await self.scheduled.chat_blocked(view.gist, exc.message)
                raise

    # --- the one place that talks to Telegram -----------------------------------------------
    async def _put(
        self,
        analysis_id: str,
        card: _Card,
        location: CardLocation | None,
        chat_id: int,
        *,
        live: bool,
        silent: bool = False,
    ) -> CardLocation | None:
        """Show the analysis as it is now: edit `location`, or send a new message to `chat_id`
        when there is none (or it can no longer be edited). Call with the card's lock held (`_held`)."""
        while True:
            view = await asyncio.to_thread(self.service.card_view, analysis_id)
            if view is None:
                return location
            gist = view.gist
            zone = await self.delivery.zone(gist.owner) if self.delivery is not None else "UTC"
            text, keyboard = views.card_text(gist, view.changes, zone), views.card_keyboard(gist)
            text += await self._track_text(gist)
            if live and location is not None and self.delivery is not None:
                await self.delivery.finished(gist, location.chat_id, zone)
            try:
                if location is None:
                    message = await self.bot.send_message(
                        chat_id, text, reply_markup=keyboard, disable_notification=silent
                    )
                    location = CardLocation(chat_id, message.message_id)
                    if live:
                        await self.cards.save(analysis_id, location)
                elif live and await self._already_shown(
                    analysis_id, card, (location, text, keyboard_key(keyboard))
                ):
                    return location
                else:
                    await self.bot.edit_message_text(
                        text, chat_id=location.chat_id, message_id=location.message_id, reply_markup=keyboard
                    )
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                logger.info("[%s] Telegram asks to wait %.1fs before the next edit", analysis_id, wait)
                await asyncio.sleep(wait)
                continue  # and render the newest state then
            except BadRequest as exc:
                description = exc.message.lower()
                if live and any(gone in description for gone in GONE):
                    logger.info(
                        "[%s] the card can no longer be edited (%s); sending a new one",
                        analysis_id,
                        exc.message,
                    )
                    location = None
                    continue
                if NOT_MODIFIED not in description:
                    raise
            if live:
                card.shown, card.last_edit = (location, text, keyboard_key(keyboard)), self.clock()
                if self.card_lock is not None:
                    await self.cards.mark_shown(analysis_id, shown_digest(card.shown))
            return location

    async def _already_shown(self, analysis_id: str, card: _Card, shown: tuple) -> bool:
        """Whether the live card shows this already: as this process left it, or (several
        instances) as the last instance to touch it recorded."""
        if self.card_lock is None:
            return card.shown == shown
        return await self.cards.shown(analysis_id) == shown_digest(shown)

    async def _track_text(self, gist: Gist) -> str:
        """The track record lines of a completed card; a failure to read them leaves them out."""
        if self.track_lines is None or gist.status != Status.COMPLETED:
            return ""
        try:
            return card_track_lines(await asyncio.to_thread(self.track_lines, gist))
        except Exception:
            logger.exception("[%s] track record line not shown", gist.id)
            return ""

    # --- bookkeeping ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _held(self, analysis_id: str, card: _Card) -> AsyncIterator[None]:
        """The card's lock in this process, then (several instances) across instances."""
        async with card.lock:
            if self.card_lock is None:
                yield
            else:
                async with self.card_lock.hold(analysis_id):
                    yield

    def _card(self, analysis_id: str) -> _Card:
        card = self._cards.get(analysis_id)
        if card is None:
            card = self._cards[analysis_id] = _Card()
        return card

    def _forget_idle(self) -> None:
        if len(self._cards) <= MAX_TRACKED:
            return
        for analysis_id, card in list(self._cards.items())[: len(self._cards) - MAX_TRACKED]:
            if card.follower is None and not card.dirty and not card.lock.locked():
                del self._cards[analysis_id]
