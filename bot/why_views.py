"""What the Why button and /why show (issue 22): text from analysis/explain.py, escaped here
once. A judge's reason is model text: it is shown as plain text, never as markup."""

from html import escape

from analysis.explain import data_line, market_lines, quality_lines, why_lines
from analysis.models import Gist

MAX_CHARS = 3900  # a Telegram message holds 4096 characters


def card_data_line(gist: Gist) -> list[str]:
    """The card's data-quality line, once INIT recorded it."""
    line = data_line(gist)
    return [escape(line)] if line else []


def why_text(gist: Gist) -> str:
    """The Why button's answer: the top K, two strongest contributions or the judge's reason each."""
    lines = [f"<b>Why</b> · {escape(gist.short_id)} · {escape(gist.config.strategy)}"]
    lines += [escape(line) for line in why_lines(gist)]
    lines.append(f"One market in full: /why {escape(gist.short_id)} SYMBOL")
    return _fit(lines)


def why_market_text(document: dict) -> str:
    """/why <id> SYMBOL: one market's breakdown or reason, its facts and its data."""
    lines = [f"<b>Why</b> · {escape(document['id'][:6])} · {escape(document['method'])}"]
    lines += [escape(line) for line in market_lines(document)]
    lines += [escape(line) for line in quality_lines(document)[:1]]
    return _fit(lines)


def _fit(lines: list[str]) -> str:
    text = "\n".join(lines)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS].rsplit("\n", 1)[0] + "\n…"
