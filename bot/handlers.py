"""Command and button handlers: parse, call the config factory or the service, render a view.

The service is synchronous (Redis, Celery), so handlers run its calls in a thread and the event
loop keeps answering other users. Authorization and user-fit errors are handled by `@guarded`.
"""

import asyncio
import logging
from collections.abc import Callable

from telegram import MaybeInaccessibleMessage, Update
from telegram.error import RetryAfter
from telegram.ext import ContextTypes

from analysis.models import ActionResult, RankingConfig, Status
from analysis.service import Actor, AnalysisService
from bot import callbacks, views
from bot.cards import CardLocation
from bot.chart import ranking_chart_png
from bot.guards import ADMIN, TRADER, guarded, log_refusal, parse_press, shown_callback_data
from bot.notifier import retry_after_seconds
from bot.parsing import analysis_id_arg, command_text, parse_exit_args, parse_rank_args
from bot.services import BotServices, services
from bot.why_handlers import send_why

logger = logging.getLogger(__name__)
# Longer than this, the chart is not worth holding a handler for: the error handler apologises.
CHART_FLOOD_WAIT_MAX_S = 10.0


# --- trader commands ---------------------------------------------------------------------------
@guarded(TRADER)
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: greet and point at /rank and /help."""
    await update.effective_message.reply_text(views.start_text(update.effective_user.first_name))


@guarded(TRADER)
async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: the commands this user may use."""
    is_admin = services(context).access.is_admin(update.effective_user.id)
    await update.effective_message.reply_text(views.help_text(is_admin))


@guarded(TRADER)
async def rank(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/rank [markets=N | symbols=...] [timeframe=] [top=] [strategy=] [target=] [prompt="..."]."""
    s = services(context)
    options = parse_rank_args(command_text(update.effective_message.text))
    await acknowledge(update, s.factory.choice_words(**options))
    config = await asyncio.to_thread(lambda: s.factory.create("rank", **options))
    await start_analysis(update, s, config)


@guarded(TRADER)
async def entry(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/entry <prompt>: rank markets for the best long entry."""
    s = services(context)
    prompt = command_text(update.effective_message.text)
    await acknowledge(update, s.factory.choice_words(prompt=prompt))
    config = await asyncio.to_thread(lambda: s.factory.create("entry", prompt=prompt))
    await start_analysis(update, s, config)


@guarded(TRADER)
async def exit_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/exit <symbols> <prompt>: which of these holdings to exit first."""
    s = services(context)
    symbols, prompt = parse_exit_args(command_text(update.effective_message.text))
    await acknowledge(update, s.factory.choice_words(symbols=symbols, prompt=prompt))
    config = await asyncio.to_thread(lambda: s.factory.create("exit", symbols=symbols, prompt=prompt))
    await start_analysis(update, s, config)


async def acknowledge(update: Update, words: str | None) -> None:
    """Say at once what is being done when choosing the markets takes a remote source's
    requests (the card follows; so does a refusal)."""
    if words:
        await update.effective_message.reply_text(words)


async def start_analysis(update: Update, s: BotServices, config: RankingConfig) -> None:
    """Start the analysis as the user and post its live status card."""
    gist = await asyncio.to_thread(s.service.start, config, s.access.actor(update.effective_user))
    logger.info("[%s] started by user %s: %s", gist.id, gist.owner, config.summary())
    await s.notifier.post_card(update.effective_chat.id, gist.id)


@guarded(TRADER)
async def list_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/list: the user's analyses, newest first."""
    s = services(context)
    gists = await asyncio.to_thread(s.service.list, s.access.actor(update.effective_user))
    await update.effective_message.reply_text(views.analyses_list(gists))


@guarded(TRADER)
async def status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/status <id>: post the card again here; for the owner it becomes the live card."""
    s = services(context)
    actor = s.access.actor(update.effective_user)
    analysis_id = analysis_id_arg(command_text(update.effective_message.text), "status")
    gist = await asyncio.to_thread(s.service.get, analysis_id, actor)
    await s.notifier.post_card(update.effective_chat.id, gist.id, live=gist.owner == actor.user_id)


@guarded(TRADER)
async def pause(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/pause <id>: the step in flight finishes, no new step starts."""
    await control(update, context, "pause")


@guarded(TRADER)
async def resume(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/resume <id>: continue a paused analysis."""
    await control(update, context, "resume")


@guarded(TRADER)
async def refine(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/refine <id>: raise the target confidence by 0.05 and carry on."""
    await control(update, context, "refine")


@guarded(TRADER)
async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel <id>: stop the analysis for good."""
    await control(update, context, "cancel")


async def control(update: Update, context: ContextTypes.DEFAULT_TYPE, action: str) -> None:
    """A control action named by a command: run it as the user, say what it did, update the card."""
    s = services(context)
    analysis_id = analysis_id_arg(command_text(update.effective_message.text), action)
    method = getattr(s.service, action)
    result = await asyncio.to_thread(method, analysis_id, s.access.actor(update.effective_user))
    await update.effective_message.reply_text(views.action_reply(result))
    await s.notifier.show(result.analysis_id)


@guarded(TRADER)
async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any other command: point at /help."""
    await update.effective_message.reply_text("I don't know that command; /help lists what I can do.")


# --- buttons -----------------------------------------------------------------------------------
@guarded(TRADER)
async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A status-card button: parse strictly, act as the presser, answer, then update the card."""
    query, s = update.callback_query, services(context)
    press = await parse_press(update, callbacks.parse)
    if press is None:
        return
    actor = s.access.actor(update.effective_user)
    await asyncio.to_thread(s.service.get, press.analysis_id, actor)  # may this user act on it?
    if not await pressed_on_its_card(s, press.analysis_id, query.message):
        log_refusal(update, "button of another analysis than the pressed message shows")
        await query.answer(views.STALE_BUTTON)
        return
    if press.action == "chart":
        await send_chart(update, context, press.analysis_id)
        return
    if press.action == "why":
        await send_why(update, context, press.analysis_id)
        return
    result = await asyncio.to_thread(act, s.service, press, actor)
    await query.answer(views.action_answer(result))
    pressed = query.message if query.message is not None and query.message.is_accessible else None
    await s.notifier.show(result.analysis_id, *((pressed.chat_id, pressed.message_id) if pressed else ()))


async def pressed_on_its_card(
    s: BotServices, analysis_id: str, message: MaybeInaccessibleMessage | None
) -> bool:
    """Whether a press about `analysis_id` came from a message it may change: the analysis's
    recorded card, or a message whose own buttons carry the analysis (callback data is forged
    easily; the pressed message's buttons come from Telegram)."""
    if message is None:  # a message sent in inline mode: this bot sends none
        return False
    shown = (callbacks.parse(data) for data in shown_callback_data(message))
    if any(press is not None and press.analysis_id == analysis_id for press in shown):
        return True
    return await s.notifier.cards.get(analysis_id) == CardLocation(message.chat.id, message.message_id)


def refresh(service: AnalysisService, press: callbacks.ButtonPress, actor: Actor) -> ActionResult:
    """Refresh changes nothing: it only checks the actor may look."""
    gist = service.get(press.analysis_id, actor)
    return ActionResult("refresh", gist.id, False, "Up to date.", gist)


# What each (valid) press asks the service for: a table, so a name in callback data reaches
# only these methods.
BUTTON_ACTIONS: dict[str, Callable[[AnalysisService, callbacks.ButtonPress, Actor], ActionResult]] = {
    "pause": lambda service, press, actor: service.pause(press.analysis_id, actor),
    "resume": lambda service, press, actor: service.resume(press.analysis_id, actor),
    "cancel": lambda service, press, actor: service.cancel(press.analysis_id, actor),
    "refine": lambda service, press, actor: service.refine(press.analysis_id, actor, press.generation),
    "refresh": refresh,
}


def act(service: AnalysisService, press: callbacks.ButtonPress, actor: Actor) -> ActionResult:
    return BUTTON_ACTIONS[press.action](service, press, actor)


async def send_chart(update: Update, context: ContextTypes.DEFAULT_TYPE, analysis_id: str) -> None:
    """Chart button: answer at once, then send the PNG of this state (drawn in a thread by the
    first press only); past the user's charts a minute, a polite answer and nothing sent."""
    s, query = services(context), update.callback_query
    gist = await asyncio.to_thread(s.service.get, analysis_id, s.access.actor(update.effective_user))
    if gist.status != Status.COMPLETED or not gist.result:
        await query.answer("The chart is ready once the analysis completes.")
        return
    charts = s.charts
    wait_s = await asyncio.to_thread(charts.wait_before_next, update.effective_user.id)
    if wait_s:
        await query.answer(views.chart_wait(s.settings.chart_presses_per_minute, wait_s))
        return
    await query.answer("Sending the chart…")
    png = await asyncio.to_thread(charts.png, gist, ranking_chart_png)
    caption = views.chart_caption(gist)
    try:
        await context.bot.send_photo(update.effective_chat.id, photo=png, caption=caption)
    except RetryAfter as exc:
        # The chat's flood control (a group's card edits and notices count too): the press was
        # answered already, so wait it out once and send, rather than lose the chart.
        wait = retry_after_seconds(exc)
        if wait > CHART_FLOOD_WAIT_MAX_S:
            raise
        logger.info("[%s] Telegram asks to wait %.1fs before sending the chart", analysis_id, wait)
        await asyncio.sleep(wait)
        await context.bot.send_photo(update.effective_chat.id, photo=png, caption=caption)


# --- admin commands ----------------------------------------------------------------------------
@guarded(ADMIN)
async def force_resume(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/force_resume <id>: a new chain from the last checkpoint, fencing out any zombie step."""
    await control(update, context, "force_resume")


@guarded(ADMIN)
async def stuck(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stuck: analyses that should run but hold no lease and made no progress lately."""
    gists = await asyncio.to_thread(services(context).service.stuck)
    await update.effective_message.reply_text(views.stuck_list(gists))


@guarded(ADMIN)
async def queues(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/queues: broker queue depths and analyses by status."""
    s = services(context)
    depths, overview = await asyncio.gather(
        asyncio.to_thread(s.ops.queue_depths), asyncio.to_thread(s.service.overview)
    )
    await update.effective_message.reply_text(views.queues_text(depths, overview))


@guarded(ADMIN)
async def workers(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/workers: the Celery workers that answer a ping within a second."""
    names = await asyncio.to_thread(services(context).ops.workers)
    await update.effective_message.reply_text(views.workers_text(names))


@guarded(ADMIN)
async def failures(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/failures: the most recent step failures."""
    rows = await asyncio.to_thread(services(context).service.recent_failures)
    zone = await services(context).delivery.zone(str(update.effective_user.id))
    await update.effective_message.reply_text(views.failures_text(rows, zone))


@guarded(ADMIN)
async def health(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/health: healthy, warning or critical, with the reasons and the figures behind them."""
    s = services(context)
    reading = await asyncio.to_thread(s.health)
    await update.effective_message.reply_text(views.health_text(reading))
