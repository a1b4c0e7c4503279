"""Command arguments into what the config factory and the service take, or a clear `UsageError`.

/rank markets=20 timeframe=4h top=5 target=0.85 prompt="strong trends, low volatility"
/rank symbols=BTC/USDT,ETH/USDT,SOL/USDT top=2
/entry <prompt>
/exit <symbol,symbol,...> [prompt]
"""

import re
import shlex

from analysis.errors import AnalysisError, quoted

# Phones and desktop clients turn straight quotes into typographic ones as you type.
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'"})
_COMMAND = re.compile(r"^/[A-Za-z0-9_]+(?:@\w+)?\s*")
RANK_KEYS = ("markets", "symbols", "timeframe", "top", "strategy", "target", "prompt")
RANK_EXAMPLE = '/rank markets=20 top=5 prompt="steady uptrends"'
SCHEDULE_EXAMPLE = '/schedule 4h markets=30 top=10, or /schedule cron="0 */4 * * *" top=10'


class UsageError(AnalysisError):
    """A command was written in a way the bot cannot read; the message says how to write it."""


def command_text(text: str | None) -> str:
    """What follows the command word: '/rank  top=3' -> 'top=3'."""
    return _COMMAND.sub("", text or "", count=1).strip()


def parse_rank_args(text: str) -> dict:
    """`key=value` words (quotes may hold spaces) as keyword arguments of
    `RankingConfigFactory.create_ranking_config`."""
    options: dict = {}
    for word in _split(text):
        key, sep, value = word.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(f"{quoted(word)} is not key=value; for example: {RANK_EXAMPLE}")
        if key not in RANK_KEYS:
            raise UsageError(f"unknown option {quoted(key)}: use {', '.join(RANK_KEYS)}")
        name = "top_k" if key == "top" else key
        if name in options:
            raise UsageError(f"{key} is given twice")
        options[name] = _convert(key, value)
    return options


def parse_schedule_args(text: str) -> tuple[str, str, dict]:
    """'4h markets=30 top=10 notify=changes' -> ('4h', 'changes', {markets: 30, top_k: 10});
    the first word is the interval or cron="m h dom mon dow"; the rest are /rank's options."""
    words = _split(text)
    if not words:
        raise UsageError(f"say how often and what: {SCHEDULE_EXAMPLE} (times in UTC)")
    every, notify, rest = words[0], "always", []
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if sep and key.strip().lower() == "notify":
            notify = value.strip().lower()
        else:
            rest.append(word)
    return every, notify, parse_rank_args(shlex.join(rest))


def parse_exit_args(text: str) -> tuple[list[str], str]:
    """'/exit BTC/USDT, ETH/USDT take profits?' -> (['BTC/USDT', 'ETH/USDT'], 'take profits?'):
    the first word and every word joined to it by a comma are the symbols, the rest the prompt."""
    words = text.split()
    taken = min(len(words), 1)
    while taken < len(words) and (words[taken - 1].endswith(",") or words[taken].startswith(",")):
        taken += 1
    symbols = [s.strip() for s in ",".join(words[:taken]).split(",") if s.strip()]
    return symbols, " ".join(words[taken:])


def analysis_id_arg(text: str, command: str) -> str:
    """The one analysis id a command takes."""
    words = text.split()
    if len(words) != 1:
        raise UsageError(f"give one analysis id, e.g. /{command} k3f9a2 (your ids are in /list)")
    return words[0]


def schedule_id_arg(text: str, command: str = "/unschedule") -> str:
    """The one schedule id /unschedule (or /schedule resume) takes."""
    words = text.split()
    if len(words) != 1:
        raise UsageError(f"give one schedule id, e.g. {command} q7m2k9xa (your ids are in /schedules)")
    return words[0]


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text.translate(_SMART_QUOTES))
    except ValueError:
        raise UsageError('a quote is not closed: write prompt="like this"') from None


def _convert(key: str, value: str) -> object:
    if key in ("markets", "top"):
        if not re.fullmatch(r"\+?[0-9]{1,6}", value.strip()):
            raise UsageError(f"{key} must be a whole number, not {quoted(value)}")
        return int(value)
    if key == "target":
        try:
            return float(value)
        except ValueError:
            raise UsageError(f"target must be a number like 0.85, not {quoted(value)}") from None
    if key == "symbols":
        symbols = [s.strip() for s in value.split(",") if s.strip()]
        if not symbols:
            raise UsageError("symbols needs a comma-separated list, e.g. symbols=BTC/USDT,ETH/USDT")
        return symbols
    if key in ("timeframe", "strategy"):
        return value.strip().lower()
    return value
