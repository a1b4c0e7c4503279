"""Exchange answers with a size bound: a requests session for ccxt that refuses a body over a byte
cap while reading it (never the whole body in memory first), and the check that an answer holds no
more rows than the request's `limit` (ccxt would trim the extra rows silently after parsing them).

An exchange (or a mirror, or a proxy) that answers with 2,000 times the rows asked for is
broken, not generous: its answer is malformed, retried, and then the analysis pauses naming it.
"""

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from analysis.markets.candle_rows import MalformedAnswer

CHUNK_BYTES = 64 * 1024


def size_words(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} MiB" if n_bytes >= 2**20 else f"{n_bytes:,} bytes"


class BoundedSession(requests.Session):
    """A session whose answers are read up to `max_bytes`; a longer one is MalformedAnswer (ccxt
    does not catch it, so it reaches the provider's retries as it is)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__()
        self.max_bytes = max_bytes

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["stream"] = True
        response = super().request(method, url, *args, **kwargs)
        too_big = f"more than {size_words(self.max_bytes)}"
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise MalformedAnswer(too_big)
        body = bytearray()
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                body += chunk
                if len(body) > self.max_bytes:
                    raise MalformedAnswer(too_big)
        finally:
            response.close()
        response._content = bytes(body)  # what `.text` and `.json()` read
        return response


def check_row_count(answer: object, url: str) -> None:
    """MalformedAnswer when a list answer holds more rows than the URL's `limit` asked for."""
    asked = parse_qs(urlsplit(url).query).get("limit", [""])[0]
    if isinstance(answer, list) and asked.isdigit() and len(answer) > int(asked):
        raise MalformedAnswer(f"{len(answer):,} rows for a limit of {asked}")
