"""What the bot shows: pure functions from core values to text (Telegram HTML) and keyboards.

Every piece of user or market text is escaped here, once. Callback answers are plain text (they
are not parsed) and are kept within Telegram's 200 characters.
"""

from collections import Counter
from html import escape

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup

from analysis.errors import AnalysisError, NotFound
from analysis.health import Health
from analysis.health import describe as describe_health
from analysis.local_time import shown_time
from analysis.models import ActionResult, Gist, Status
from bot import callbacks, schedule_views, why_views

BAR_CELLS = 10
MAX_ROWS = 25  # ranked markets shown on a card; the chart and /status --json have them all
STALE_BUTTON = "This button is no longer valid."
NOT_ADMIN = "Sorry, that command is for admins."
POST_AS_YOURSELF = (
    "Sorry — you are posting anonymously (as the group or a channel), and Telegram "
    "shows every anonymous admin as the same account: post as yourself to use this bot."
)
TITLES = {"rank": "Ranking", "entry": "Entry analysis", "exit": "Exit analysis"}

TRADER_COMMANDS = [
    BotCommand("rank", "Rank markets: /rank markets=20 top=5"),
    BotCommand("entry", "Best long entries: /entry <what you look for>"),
    BotCommand("exit", "Which holding to exit first: /exit BTC/USDT,ETH/USDT"),
    BotCommand("list", "Your analyses"),
    BotCommand("status", "Show an analysis card: /status <id>"),
    BotCommand("pause", "Pause an analysis: /pause <id>"),
    BotCommand("resume", "Resume an analysis: /resume <id>"),
    BotCommand("refine", "Raise the target confidence: /refine <id>"),
    BotCommand("cancel", "Cancel an analysis: /cancel <id>"),
    BotCommand("why", "Why each market ranks where it does: /why <id> [SYMBOL]"),
    BotCommand("schedule", "Rank on a schedule (UTC): /schedule 4h markets=30 top=10"),
    BotCommand("schedules", "Your schedules, with Remove (and Resume) buttons"),
    BotCommand("unschedule", "Remove a schedule: /unschedule <id>"),
    BotCommand("track", "Does the top K beat the market? /track [score|llm] [1h]"),
    BotCommand("settings", "Your time zone, quiet hours and which messages ring"),
    BotCommand("help", "How to use this bot"),
]
ADMIN_COMMANDS = [
    BotCommand("force_resume", "Restart a stuck analysis: /force_resume <id>"),
    BotCommand("stuck", "Analyses that should run but make no progress"),
    BotCommand("queues", "Queue depths and analyses by status"),
    BotCommand("workers", "Workers answering a ping"),
    BotCommand("failures", "Recent step failures"),
    BotCommand("health", "Healthy, warning or critical, with the reasons"),
    BotCommand("maintenance", "For a deploy: /maintenance on, off or status"),
]


# --- the status card ------------------------------------------------------------------------
def status_word(status: Status) -> str:
    return status.value.capitalize()


def progress_bar(progress: float, cells: int = BAR_CELLS) -> str:
    progress = min(max(progress, 0.0), 1.0)
    filled = int(progress * cells + 1e-9)
    return "█" * filled + "░" * (cells - filled) + f" {progress:.0%}"


def card_text(gist: Gist, changes: dict | None = None, zone: str = "UTC") -> str:
    """The status card: what the analysis is, how far it got, and (when complete) the ranking;
    for a scheduled run, what changed since the schedule's previous run (`changes`). Times are in
    `zone` (the analysis owner's: a card lives in one chat) with their UTC offset."""
    title = TITLES.get(gist.config.kind, "Analysis")
    lines = [
        f"<b>{title} {escape(gist.short_id)}</b> · {status_word(gist.status)}",
        escape(gist.config.summary()),
    ]
    if gist.demo:
        lines.append("⚠️ DEMO DATA: synthetic markets, not real prices")
    else:
        lines.append(f"Data: {escape(gist.source_label(zone=zone))}")
    lines += why_views.card_data_line(gist)
    if gist.config.notice:
        lines.append(f"⚠️ {escape(gist.config.notice)}")
    lines.append(f"{progress_bar(gist.progress)} · step {max(gist.seq, 0)}")
    reached = " ✓" if gist.confidence + 1e-9 >= gist.target else ""
    lines.append(f"Confidence {gist.confidence:.2f} / target {gist.target:.2f}{reached}")
    if gist.llm_summary():
        lines.append(escape(gist.llm_summary()))
    if gist.status == Status.COMPLETED and gist.result:
        lines += ["", f"<b>Top {len(gist.result)}</b>"]
        lines += [f"{item.rank}. {escape(item.symbol)}  {item.score:+.3f}" for item in gist.result[:MAX_ROWS]]
        if len(gist.result) > MAX_ROWS:
            lines.append(f"… and {len(gist.result) - MAX_ROWS} more on the chart")
    elif gist.leaders:
        lines.append("Leaders so far: " + ", ".join(escape(str(s)) for s in gist.leaders))
    if gist.schedule:
        lines += [""] + schedule_views.changes_lines(gist.schedule, changes, gist.status == Status.COMPLETED)
    if gist.reason:
        lines.append(f"Reason: {escape(gist.reason[:300])}")
    if gist.note:
        lines.append(f"Note: {escape(gist.note[:300])}")
    lines.append(f"Updated {escape(shown_time(gist.updated_at, zone))}")
    return "\n".join(lines)


def card_keyboard(gist: Gist) -> InlineKeyboardMarkup:
    """Buttons that fit the state: running — Pause, Cancel; paused — Resume, Cancel;
    completed — Refine, Chart, Why; always Refresh."""

    def button(label: str, action: str, generation: int | None = None) -> InlineKeyboardButton:
        return InlineKeyboardButton(label, callback_data=callbacks.encode(action, gist.id, generation))

    if gist.status in (Status.PENDING, Status.RUNNING):
        row = [button("Pause", "pause"), button("Cancel", "cancel")]
    elif gist.status == Status.PAUSED:
        row = [button("Resume", "resume"), button("Cancel", "cancel")]
    elif gist.status == Status.COMPLETED:
        row = [button("Refine", "refine", gist.refine_gen), button("Chart", "chart"), button("Why", "why")]
    else:
        row = []
    return InlineKeyboardMarkup([r for r in (row, [button("Refresh", "refresh")]) if r])


def chart_caption(gist: Gist) -> str:
    demo = " · DEMO DATA" if gist.demo else f" · {escape(gist.source_label())}"
    return (
        f"{TITLES.get(gist.config.kind, 'Analysis')} {escape(gist.short_id)}: top "
        f"{len(gist.result)} · confidence {gist.confidence:.2f} / {gist.target:.2f}{demo}"
    )


def chart_wait(per_minute: int, wait_s: int) -> str:
    return f"That is {per_minute} charts this minute, as many as I send; please try again in {wait_s} s."


def not_allowed_user(user_id: int | None) -> str:
    return f"Sorry, this bot is private. Ask an admin to add your Telegram user id {user_id}."


# --- replies -----------------------------------------------------------------------------------
def start_text(first_name: str) -> str:
    return (
        f"Hi {escape(first_name)}! I rank crypto markets in the background and keep a status "
        f"card up to date while I work.\n\nTry /rank markets=20 top=5, or see /help."
    )


def help_text(is_admin: bool) -> str:
    lines = [
        "<b>Start an analysis</b>",
        "/rank [markets=N | symbols=A/USDT,B/USDT] [timeframe=1h] [top=K] [strategy=score|llm] "
        '[target=0.8] [prompt="..."]',
        "/entry &lt;what you look for&gt; — best long entries",
        "/exit &lt;A/USDT,B/USDT&gt; [note] — which holding to exit first",
        "",
        "<b>Follow and steer</b>",
        "/list — your analyses",
        "/status, /pause, /resume, /refine, /cancel &lt;id&gt; — or use the card's buttons",
        "/why &lt;id&gt; [SYMBOL] — why each market ranks where it does, and what its data was like",
        "Refine raises the target confidence by 0.05: a score ranking then shows the steadiest "
        "top K of the last candles, an llm ranking asks the judge more comparisons.",
        "",
        "<b>On a schedule</b> (times in UTC)",
        '/schedule &lt;15m|1h|4h|12h|1d|cron="0 */4 * * *"&gt; [the options of /rank] '
        "[notify=changes] — run it again and again; each card says what changed",
        "/schedules — yours, with Remove buttons and Resume for a paused one (admins: /schedules all)",
        "/schedule resume &lt;id&gt; — resume a paused one; /unschedule &lt;id&gt; — remove one",
        "/schedule export &lt;id&gt; [off] — its top K for freqtrade (a URL and a token; "
        "or export=freqtrade when you make it)",
        "",
        "<b>Track record</b>",
        "/track [score|llm] [1h] — did past top K picks beat the universe? IC, excess, hit "
        "rate per horizon beside the volume, momentum and random baselines, and a chart",
        "",
        "<b>Your settings</b>",
        "/settings — time zone, quiet hours, each kind of message on / silent / off "
        '(cron lines in your zone: /schedule cron="0 9 * * *" tz=local)',
    ]
    if is_admin:
        lines += ["", "<b>Admin</b>"] + [f"/{c.command} — {escape(c.description)}" for c in ADMIN_COMMANDS]
    return "\n".join(lines)


def error_text(err: AnalysisError) -> str:
    message = str(err)
    return "Sorry — " + escape(message[:1].lower() + message[1:]) + ("" if message.endswith(".") else ".")


def button_refusal(err: AnalysisError) -> str:
    """Plain text for a callback answer: an unknown or expired analysis is a stale button."""
    if isinstance(err, NotFound):
        return STALE_BUTTON
    message = str(err)
    return ("Sorry — " + message[:1].lower() + message[1:])[:190]


def action_reply(result: ActionResult) -> str:
    return escape(result.message)


def action_answer(result: ActionResult) -> str:
    """Plain text for a callback answer."""
    return result.message[:190]


def analyses_list(gists: list[Gist]) -> str:
    if not gists:
        return "You have no analyses yet. Start one with /rank."
    lines = ["<b>Your analyses</b>"]
    for gist in gists:
        demo = " · demo" if gist.demo else ""
        lines.append(
            f"<code>{escape(gist.short_id)}</code> {status_word(gist.status)} "
            f"{gist.progress:.0%} · {escape(gist.config.summary())}{demo}"
        )
    lines.append("\nShow one with /status &lt;id&gt;.")
    return "\n".join(lines)


# --- admin ----------------------------------------------------------------------------------
def stuck_list(gists: list[Gist]) -> str:
    if not gists:
        return "Nothing is stuck."
    lines = [f"<b>{len(gists)} stuck</b>"]
    for gist in gists:
        lines.append(
            f"<code>{escape(gist.id)}</code> {status_word(gist.status)} · step {gist.seq} · "
            f"owner {escape(gist.owner)} · {escape(gist.reason or 'no recent progress')}"
        )
    lines.append("\nRestart one with /force_resume &lt;id&gt;.")
    return "\n".join(lines)


def queues_text(depths: dict, overview: Counter) -> str:
    lines = ["<b>Queues</b>"]
    for name, depth in depths.items():
        lines.append(
            f"{escape(name)}: {depth.queued} queued · {depth.unacked} delivered, not yet acknowledged"
        )
    lines += ["", "<b>Live analyses by status</b>"]
    order = [s.value for s in Status]
    counts = [f"{status_word(Status(s))}: {overview[s]}" for s in order if overview.get(s)]
    lines.append(" · ".join(counts) if counts else "none")
    return "\n".join(lines)


def health_text(health: Health) -> str:
    """/health: the same reading as `marketrank health`."""
    return escape(describe_health(health))


def workers_text(names: list[str]) -> str:
    if not names:
        return "⚠️ No worker answered the ping: analyses will not progress until one runs."
    return f"<b>{len(names)} worker(s) answered</b>\n" + "\n".join(escape(n) for n in names)


def failures_text(rows: list[dict], zone: str = "UTC") -> str:
    if not rows:
        return "No recent failures."
    lines = ["<b>Recent failures</b>"]
    for row in rows:
        at = shown_time(float(row.get("at", 0)), zone, "%m-%d %H:%M:%S")
        lines.append(
            f"{at} <code>{escape(str(row.get('id', '?')))}</code> step {escape(str(row.get('seq', '?')))}: "
            f"{escape(str(row.get('reason', ''))[:200])}"
        )
    return "\n".join(lines)
