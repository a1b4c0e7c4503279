"""How the LLM judge reads a failed call: a timeout, a refused connection or an HTTP status becomes
a `Fault` (what to tell a trader once and after repeated failures, whether a retry may help, how
long the server asked to wait), with the API key never in its text.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import openai


@dataclass(frozen=True)
class Fault:
    """Why one attempt failed, in two phrasings: once, and for repeated failures."""

    once: str
    kept: str
    retryable: bool
    retry_after: float | None = None


def fault_from_error(
    err: openai.OpenAIError,
    *,
    model: str,
    where: str,
    timeout_s: float,
    clock: Callable[[], float],
    redact: Callable[[str], str],
) -> Fault:
    """Why a call to the server failed, phrased for a trader, and whether to retry it."""
    if isinstance(err, openai.APITimeoutError):
        return Fault(
            f"the LLM server took longer than {timeout_s:g} s to answer",
            f"the LLM server kept taking longer than {timeout_s:g} s to answer",
            retryable=True,
        )
    if isinstance(err, openai.APIConnectionError):
        return Fault(
            f"could not connect to the LLM server at {where}",
            f"could not connect to the LLM server at {where}",
            retryable=True,
        )
    if isinstance(err, openai.APIStatusError):
        return _fault_from_status(err, model, where, clock, redact)
    if isinstance(err, openai.APIError):  # e.g. a 200 whose body is not a chat completion
        return Fault(
            "the LLM server sent a response that is not a chat completion",
            "the LLM server kept sending responses that are not chat completions",
            retryable=True,
        )
    return Fault(
        f"The OpenAI client refused the call ({type(err).__name__}). Check OPENAI_BASE_URL and "
        "OPENAI_API_KEY.",
        "",
        retryable=False,
    )


def _fault_from_status(
    err: openai.APIStatusError,
    model: str,
    where: str,
    clock: Callable[[], float],
    redact: Callable[[str], str],
) -> Fault:
    status = err.status_code
    if status == 401:
        return Fault(
            f"The LLM server at {where} rejected the API key (HTTP 401). Check OPENAI_API_KEY.", "", False
        )
    if status == 403:
        return Fault(
            f"The LLM server at {where} refused access with this API key (HTTP 403), perhaps to model "
            f"{model!r}. Check OPENAI_API_KEY and OPENAI_MODEL (OPENAI_REFINE_MODEL when refining).",
            "",
            False,
        )
    if status == 404:
        return Fault(
            f"The LLM server at {where} does not know model {model!r} or has no chat completions "
            "endpoint (HTTP 404). Check OPENAI_MODEL (OPENAI_REFINE_MODEL when refining) and "
            "OPENAI_BASE_URL.",
            "",
            False,
        )
    if status == 429 or status in (408, 409) or status >= 500:
        headers = err.response.headers if err.response is not None else None
        wait = retry_after_seconds(headers, now=clock())
        label = f"{status} (too many requests)" if status == 429 else str(status)
        return Fault(
            f"the LLM server answered {label}",
            f"the LLM server kept answering {label}",
            True,
            retry_after=wait,
        )
    detail = redact(_server_message(err))[:200]
    return Fault(
        f"The LLM server at {where} rejected the request (HTTP {status}{': ' + detail if detail else ''}). "
        f"The model may not support structured JSON answers; check OPENAI_MODEL and OPENAI_BASE_URL.",
        "",
        False,
    )


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: float) -> float | None:
    """Seconds asked by `retry-after-ms` or `Retry-After` (seconds or HTTP date), or None."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _server_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
    return ""


def safe_host(base_url: str) -> str:
    """The server's scheme://host[:port]/path without any user:password part."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")
