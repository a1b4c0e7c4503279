"""The core's error types: each carries a message fit to show a trader or an admin.

Fronts (bot, CLI) catch only `AnalysisError`; anything else is a bug and reaches the one error
handler with its traceback.
"""


class AnalysisError(Exception):
    """Base error of the core; `str(err)` is a one-line message fit for a user."""


class InvalidConfig(AnalysisError):
    """A requested analysis is not valid (unknown symbol, bad timeframe, K too large...)."""


class NotFound(AnalysisError):
    """No analysis with this id (or it expired)."""


class NotAllowed(AnalysisError):
    """The caller may not act on this analysis or use this command."""


class LimitReached(AnalysisError):
    """A per-user limit (concurrent analyses, prompt length) refuses the request."""


class DataUnavailable(AnalysisError):
    """The market-data source failed or lacks the candles the analysis needs."""


class JudgeUnavailable(AnalysisError):
    """The LLM judge could not give a valid answer after bounded retries."""


class UnderMaintenance(AnalysisError):
    """Maintenance is on (a deploy): nothing new starts until it is off."""

    MESSAGE = "marketrank is being updated; try again in a few minutes"

    def __init__(self, message: str = MESSAGE):
        super().__init__(message)


def quoted(text: object, limit: int = 24) -> str:
    """User input quoted safely inside an error message: printable characters only, short."""
    printable = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return repr(printable[:limit] + ("…" if len(printable) > limit else ""))


def first_line(exc: BaseException) -> str:
    """An exception's text cut to its first line (its type's name when it has none): for a one-line
    log or message about a library's error (redis-py's can run over several lines)."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
