"""The Telegram front: builds the PTB `Application` from settings and runs it (polling).

`python -m bot` runs `main()`. Services are built once in `post_init` and closed in
`post_stop` / `post_shutdown`; `main()` only wires.
"""

import asyncio
import logging
import os
import sys
import traceback
from urllib.parse import urlsplit

from telegram import BotCommandScopeChat, Update
from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)

from analysis.logging_setup import configure_logging
from analysis.settings import Settings, settings_or_exit
from bot import (
    callbacks,
    handlers,
    maintenance_handlers,
    schedule_handlers,
    settings_callbacks,
    settings_handlers,
    track_handlers,
    views,
    why_handlers,
)
from bot.services import BOT_DATA_KEY, BotServices
from bot.startup import wait_for_bot_api
from bot.update_ledger import OnceUpdateProcessor
from bot.webhook import run_on_webhook

logger = logging.getLogger(__name__)

CONCURRENT_UPDATES = 256  # PTB's own number for concurrent_updates(True)

NO_TOKEN = """\
marketrank bot: TELEGRAM_BOT_TOKEN is not set, so the Telegram bot is not started.

To get a token: open Telegram, talk to @BotFather, send /newbot and follow the steps; it answers
with a token like 123456789:AAE...  Put it in .env as TELEGRAM_BOT_TOKEN=... (and your own user id
in ADMIN_USER_IDS), then start the bot again with `python -m bot`.

Without a token the rest of marketrank still works: the Celery worker runs analyses and the
`marketrank` CLI starts, follows and steers them (try `marketrank start --markets 20 --wait`)."""

COMMANDS = [
    ("start", handlers.start),
    ("help", handlers.help_command),
    ("rank", handlers.rank),
    ("entry", handlers.entry),
    ("exit", handlers.exit_command),
    ("list", handlers.list_command),
    ("status", handlers.status),
    ("pause", handlers.pause),
    ("resume", handlers.resume),
    ("refine", handlers.refine),
    ("cancel", handlers.cancel),
    ("force_resume", handlers.force_resume),
    ("stuck", handlers.stuck),
    ("queues", handlers.queues),
    ("workers", handlers.workers),
    ("failures", handlers.failures),
    ("health", handlers.health),
    ("schedule", schedule_handlers.schedule),
    ("schedules", schedule_handlers.schedules),
    ("unschedule", schedule_handlers.unschedule),
    ("why", why_handlers.why),
    ("track", track_handlers.track),
    ("maintenance", maintenance_handlers.maintenance),
]
COMMANDS += [("settings", settings_handlers.settings_command)]  # #24


def api_url(settings: Settings) -> str:
    """TELEGRAM_API_BASE_URL as PTB wants it (it appends the token): a bare server address such
    as `http://127.0.0.1:8081` gets Telegram's `/bot` path."""
    base = settings.telegram_api_base_url.rstrip("/")
    return base if urlsplit(base).path else f"{base}/bot"


def file_url(settings: Settings) -> str:
    """TELEGRAM_API_FILE_URL, or the file URL that goes with the API base URL (`.../bot` ->
    `.../file/bot`)."""
    if settings.telegram_api_file_url:
        return settings.telegram_api_file_url
    root, _, last = api_url(settings).rpartition("/")
    return f"{root}/file/{last}"


def build_application(settings: Settings) -> Application:
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    if not token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(api_url(settings))
        .base_file_url(file_url(settings))
        .defaults(Defaults(parse_mode=ParseMode.HTML))
        .rate_limiter(AIORateLimiter())
        # Updates are handled concurrently: service actions are atomic and idempotent, and card
        # edits are serialised per analysis by the notifier, so a slow chart never delays a tap.
        # The processor handles each update once (bot/update_ledger.py).
        .concurrent_updates(OnceUpdateProcessor(CONCURRENT_UPDATES))
        .post_init(start_services)
        .post_stop(stop_notifier)
        .post_shutdown(close_services)
        .build()
    )
    # A 429 is handled where it happens (the notifier waits and retries; anything else reaches
    # the error handler), so the limiter's own traceback for it is noise.
    logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)
    application.bot_data["settings"] = settings
    for name, handler in COMMANDS:
        application.add_handler(CommandHandler(name, handler))
    application.add_handler(CallbackQueryHandler(schedule_handlers.button, pattern=callbacks.SCHEDULE_PREFIX))
    application.add_handler(
        CallbackQueryHandler(settings_handlers.button, pattern=settings_callbacks.PREFIX_PATTERN)
    )
    application.add_handler(CallbackQueryHandler(handlers.button))
    # Only in private chats: in a group, other bots' commands are none of our business.
    application.add_handler(
        MessageHandler(filters.COMMAND & filters.ChatType.PRIVATE, handlers.unknown_command)
    )
    application.add_error_handler(on_error)
    return application


async def start_services(application: Application) -> None:
    """post_init: build the services once, register the command lists, start the notifier."""
    settings: Settings = application.bot_data["settings"]
    bot_services = BotServices.build(settings, application.bot)
    application.bot_data[BOT_DATA_KEY] = bot_services
    if isinstance(application.update_processor, OnceUpdateProcessor):
        application.update_processor.ledger = bot_services.ledger
    await application.bot.set_my_commands(views.TRADER_COMMANDS)
    for admin_id in settings.admin_user_ids:
        try:
            await application.bot.set_my_commands(
                views.TRADER_COMMANDS + views.ADMIN_COMMANDS, scope=BotCommandScopeChat(admin_id)
            )
        except TelegramError as exc:  # the admin has not opened a chat with the bot yet
            logger.warning("admin commands not registered for user %s: %s", admin_id, exc)
    await bot_services.notifier.start()
    await bot_services.alerts.start()
    await bot_services.delivery.start()
    logger.info(
        "bot @%s ready (allowed users: %s, admins: %d)",
        application.bot.username,
        len(settings.allowed_user_ids) or "anyone",
        len(settings.admin_user_ids),
    )


async def stop_notifier(application: Application) -> None:
    """post_stop: let the notifier put out what it holds while the bot can still send."""
    bot_services = application.bot_data.get(BOT_DATA_KEY)
    if bot_services is not None:
        await bot_services.alerts.stop()
        await bot_services.delivery.stop()
        await bot_services.notifier.stop()


async def close_services(application: Application) -> None:
    bot_services = application.bot_data.pop(BOT_DATA_KEY, None)
    if bot_services is not None:
        await bot_services.close()


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one error handler: the traceback first in the log, then a short apology to the user."""
    error = context.error
    trace = "".join(traceback.format_exception(error)).rstrip() if error is not None else ""
    where = "outside any update"
    if isinstance(update, Update):
        user = update.effective_user
        where = f"update {update.update_id} (user {user.id if user else None})"
    logger.error("%s\nwhile handling %s", trace, where)
    if not isinstance(update, Update):
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer("Sorry, something went wrong. Please try again.")
        elif update.effective_message is not None:
            await update.effective_message.reply_text("Sorry, something went wrong; it has been logged.")
    except TelegramError:
        pass  # e.g. the query was already answered


def main() -> int:
    configure_logging()
    settings = settings_or_exit()
    if not (settings.telegram_bot_token and settings.telegram_bot_token.get_secret_value()):
        print(NO_TOKEN)
        return 0
    os.environ.setdefault("PTB_TIMEDELTA", "1")  # RetryAfter.retry_after as a timedelta, no warning
    try:
        application = build_application(settings)
        # PTB's run_polling uses the current loop: wait for the server in it, then keep retrying
        # (bootstrap_retries=-1) if it drops again before polling starts.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(wait_for_bot_api(application.bot, settings.telegram_api_base_url))
        if settings.telegram_webhook_url:  # marketrank's own listener, Host and secret checked
            return run_on_webhook(application, settings, loop)
        else:
            application.run_polling(
                allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY], bootstrap_retries=-1
            )
    except InvalidToken:  # its message quotes the whole token
        print(
            f"error: the Bot API server at {settings.telegram_api_base_url} "
            "rejected TELEGRAM_BOT_TOKEN; check the token with @BotFather (or unset it to use "
            "the local sandbox)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
