"""Checks of settings that a library would otherwise refuse later, with a traceback (redis-py on a
bad URL, ccxt on an unknown exchange) or, worse, misread (a `#` in a Redis password cuts the URL
and the rest of the password becomes the host name, printed in every connection error).

Messages never quote the Redis URL: it may hold a password, and a URL that did not parse is
exactly the one whose password would not be masked.
"""

from pathlib import Path
from urllib.parse import urlsplit

from analysis.markets.sources import spec_problem

REDIS_SCHEMES = ("redis", "rediss", "unix")
# Characters that end the user:password part of a URL early; in a password they must be
# percent-encoded.
URL_DELIMITERS = {"#": "%23", "?": "%3F", "/": "%2F"}
REDIS_FORM = "redis://[[user]:password@]host[:port][/db]"


def redis_url_problem(url: str) -> str | None:
    """What is wrong with REDIS_URL, quoting none of it, or None."""
    if not url:
        return None  # the local Redis `make run` starts
    scheme, sep, rest = url.partition("://")
    if not sep:
        return f"write it as {REDIS_FORM}"
    if scheme.lower() not in REDIS_SCHEMES:
        return "it must start with redis://, rediss:// or unix://"
    if scheme.lower() == "unix":
        return None
    if "@" in rest:
        userinfo = rest[: rest.rindex("@")]
        cut = next((ch for ch in userinfo if ch in URL_DELIMITERS), None)
        if cut is not None:
            return (
                f"write the {cut!r} in the password as {URL_DELIMITERS[cut]} "
                f"(unescaped, it ends the password and the rest is read as the host)"
            )
    parts = urlsplit(url)
    if not parts.hostname:
        return f"it names no host: write it as {REDIS_FORM}"
    try:
        port = parts.port
    except ValueError:
        return "its port must be a number from 1 to 65535"
    if port == 0:
        return "its port must be a number from 1 to 65535"
    return None


def market_data_problem(spec: str) -> str | None:
    """What is wrong with MARKET_DATA, or None: a source no one registered (tests register their
    doubles before they read settings), a csv folder that is not there, an exchange ccxt lacks."""
    problem = spec_problem(spec)
    if problem:
        return f"it {problem}"
    prefix, _, argument = spec.partition(":")
    if prefix == "csv" and not Path(argument).is_dir():
        return f"{argument[:80]!r} is not a directory"
    if prefix == "ccxt":
        import ccxt  # only for a live source: it takes a moment to import

        if argument not in ccxt.exchanges:
            return f"ccxt has no exchange {argument[:40]!r} (e.g. binance, okx, kraken)"
    return None
