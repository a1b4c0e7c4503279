"""A local OpenAI-compatible HTTP server for tests.

It serves `POST /v1/chat/completions` (real chat-completion JSON: id, object, created, model,
choices[0].message.content, usage) and `GET /v1/models` on 127.0.0.1 and a free port, from an
aiohttp application running in a background thread with its own event loop. Its public API is
synchronous and thread-safe, so a test drives it from the test thread while the code under test
talks to it over real HTTP through the real `openai` client::

    with OpenAIServer(strengths={"BTC/USDT": 3.0, "ETH/USDT": 2.0}) as server:
        judge = LLMJudge(api_key="sk-test", base_url=server.base_url, ...)
        server.fail_next(2, status=429, retry_after=1)
        ...
        assert server.calls == 12

How the default policy answers (`StrengthJudge`): it finds the two markets of the comparison in
the last user message — the symbols listed in the prompt, i.e. tokens shaped like `BASE/QUOTE`
(optionally `BASE/QUOTE:SETTLE`), distinct, in order of first appearance. When a strength table
is given, tokens that are not in it (a symbol mentioned inside a summary, say) are skipped, so
the first two known symbols are the pair. The first listed is the "first" market. If the request
carries a json_schema whose `winner` has an `enum`, the server checks that the enum holds the
same two symbols and answers 400 otherwise, so a prompt that lists other symbols than its schema
is caught. The winner is the market with the higher strength; `position_bias` is added to the
first market's strength (ties go to the first). Confidence grows with the strength gap:
`0.5 + 0.49 * tanh(|gap|)`. So a test knows the true ranking: strongest first.

Listwise requests (issue 14: a json_schema named `market_order` whose `ranking` items have an
`enum`): every known symbol in the prompt is a shown market, in display order; the server answers
400 unless the enum holds exactly those symbols, and otherwise `{"ranking": [...]}`, strongest
first, `position_bias` added to the market shown first (ties keep display order). The answer is
a function of the request alone, as a model's at temperature 0.

Reasons requests (issue 22: a json_schema named `market_reasons`): the ranked symbols are the
known symbols of the prompt; the server answers 400 unless the schema's symbol enum holds exactly
those, and otherwise `{"reasons": [{"symbol": ..., "reason": "strength <s>"}, ...]}` in rank order.

Faults are scripted per upcoming chat request, in FIFO order, optionally only for requests that
mention a given symbol: `fail_next(n, status=429, retry_after=1)`, `fail_next(n, status=500)`,
`delay_next(n, seconds)` (answers normally after the delay, to trigger client timeouts),
`malformed_next(n)` (content that is not valid JSON), `off_schema_next(n)` (by default a winner
that is not one of the pair; pass `answer=` for any other content), and `fail_always(...)`.

Every chat request is recorded on arrival (`requests`), so a call counts even when the client
gave up before the answer: model, messages, response_format, headers with the
Authorization value removed (only whether a Bearer token was present is kept), and the fault or
answer given. `calls` counts chat requests received, whatever their outcome.

Authentication: a request without `Authorization: Bearer <token>` gets 401; with
`api_key="..."` any other token gets 401 too (the error message echoes the token it got, as a
real server might, so tests can check the client never repeats it). With `models=[...]`, an
unknown model gets 404 `model_not_found`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

SYMBOL_RE = re.compile(
    r"(?<![A-Za-z0-9/])([A-Z0-9]{2,15}/[A-Z0-9]{2,15}(?::[A-Z0-9]{2,15})?)(?![A-Za-z0-9/])"
)


@dataclass(frozen=True)
class ChatRequest:
    """What a policy sees of one chat completion request."""

    model: str
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None
    symbols: tuple[str, ...]  # the pair found in the prompt (see module docstring), may be < 2

    @property
    def user_text(self) -> str:
        return last_user_text(self.messages)


Policy = Callable[[ChatRequest], str]
"""Returns the assistant message content (normally a JSON string) for a request."""


@dataclass
class RecordedRequest:
    """One request, recorded on arrival; outcome, content and usage are filled in once answered."""

    path: str
    model: str | None
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None
    headers: dict[str, str]  # lower-cased names; Authorization value removed
    has_bearer: bool
    outcome: str = "pending"  # then "ok", "status 429", "delay 1.0", "malformed", "off_schema", "401"...
    content: str | None = None  # the assistant content sent back, if any
    usage: dict[str, int] | None = None  # the token counts sent back, if any


@dataclass
class _Fault:
    kind: str  # "status" | "delay" | "malformed" | "off_schema"
    remaining: float  # math.inf for fail_always
    symbol: str | None = None
    status: int = 500
    retry_after: float | str | None = None
    seconds: float = 0.0
    answer: dict[str, Any] | None = None
    after: int = 0  # applies only once more than this many chat requests have arrived


@dataclass
class StrengthJudge:
    """Deterministic policy: the stronger market wins (see module docstring)."""

    strengths: Mapping[str, float]
    position_bias: float = 0.0

    def __call__(self, request: ChatRequest) -> str:
        if list_enum(request.response_format) is not None:
            return self.rank(request.symbols)
        if reasons_enum(request.response_format) is not None:
            return self.reasons(request.symbols)
        if len(request.symbols) < 2:
            raise ValueError(f"could not find two market symbols in the prompt: {request.user_text!r}")
        first, second = request.symbols[:2]
        gap = self.strengths.get(first, 0.0) + self.position_bias - self.strengths.get(second, 0.0)
        winner = first if gap >= 0 else second
        confidence = round(0.5 + 0.49 * math.tanh(abs(gap)), 4)
        return json.dumps({"winner": winner, "confidence": confidence})

    def reasons(self, ranked: tuple[str, ...]) -> str:
        """The reasons answer: one per ranked symbol, naming its strength in the table."""
        return json.dumps(
            {"reasons": [{"symbol": s, "reason": f"strength {self.strengths.get(s, 0.0):g}"} for s in ranked]}
        )

    def rank(self, shown: tuple[str, ...]) -> str:
        """The listwise answer: the shown symbols, strongest first."""

        def utility(position: int) -> float:
            return self.strengths.get(shown[position], 0.0) + (self.position_bias if position == 0 else 0.0)

        order = sorted(range(len(shown)), key=lambda p: (-utility(p), p))
        return json.dumps({"ranking": [shown[p] for p in order]})


def reasons_enum(response_format: Mapping[str, Any] | None) -> list[str] | None:
    """The symbols a reasons (`market_reasons`, issue 22) response format asks about, if it is one."""
    try:
        schema = response_format["json_schema"]  # type: ignore[index]
        if schema["name"] != "market_reasons":
            return None
        enum = schema["schema"]["properties"]["reasons"]["items"]["properties"]["symbol"]["enum"]
    except (KeyError, TypeError):
        return None
    return list(enum) if isinstance(enum, list) else None


def list_enum(response_format: Mapping[str, Any] | None) -> list[str] | None:
    """The `ranking` items' enum of a listwise (`market_order`) response format, if it is one."""
    try:
        schema = response_format["json_schema"]  # type: ignore[index]
        if schema["name"] != "market_order":
            return None
        enum = schema["schema"]["properties"]["ranking"]["items"]["enum"]
    except (KeyError, TypeError):
        return None
    return list(enum) if isinstance(enum, list) else None


def last_user_text(messages: Iterable[Mapping[str, Any]]) -> str:
    """The text of the last user message (string content or text parts)."""
    text = ""
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = "\n".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return text


def find_symbols(text: str, known: Iterable[str] | None = None) -> tuple[str, ...]:
    """Distinct BASE/QUOTE tokens of `text` in order of first appearance (only `known` ones if given)."""
    known_set = set(known) if known is not None else None
    found: list[str] = []
    for match in SYMBOL_RE.finditer(text):
        symbol = match.group(1)
        if symbol in found or (known_set is not None and symbol not in known_set):
            continue
        found.append(symbol)
    return tuple(found)


def schema_enum(response_format: Mapping[str, Any] | None) -> list[str] | None:
    """The `winner` enum of a json_schema response format, if it declares one."""
    try:
        enum = response_format["json_schema"]["schema"]["properties"]["winner"]["enum"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return list(enum) if isinstance(enum, list) else None


class OpenAIServer:
    """OpenAI-compatible chat server on 127.0.0.1 in a background thread (see module docstring)."""

    def __init__(
        self,
        *,
        strengths: Mapping[str, float] | None = None,
        position_bias: float = 0.0,
        policy: Policy | None = None,
        api_key: str | None = None,
        models: Iterable[str] | None = None,
        latency_s: float = 0.0,
    ) -> None:
        self.latency_s = latency_s  # every answer takes this long (a slow model under load)
        self._strengths = dict(strengths or {})
        self._policy: Policy = policy or StrengthJudge(self._strengths, position_bias)
        self._api_key = api_key
        self._models = list(models) if models is not None else None
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="openai-test-server", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        loop.close()
        self._loop = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- configuration and fault scripting (thread-safe) ----------------------------------------

    def set_policy(self, policy: Policy) -> None:
        with self._lock:
            self._policy = policy

    def set_strengths(self, strengths: Mapping[str, float], position_bias: float = 0.0) -> None:
        with self._lock:
            self._strengths = dict(strengths)
            self._policy = StrengthJudge(self._strengths, position_bias)

    def fail_next(
        self, n: int, status: int = 500, retry_after: float | str | None = None, *, symbol: str | None = None
    ) -> None:
        """The next `n` chat requests (mentioning `symbol`, if given) get HTTP `status`.

        `retry_after` sets the Retry-After header: a number of seconds, or a string sent as is
        (an HTTP date, say).
        """
        self._add(_Fault("status", n, symbol, status=status, retry_after=retry_after))

    def fail_always(
        self,
        status: int = 500,
        retry_after: float | str | None = None,
        *,
        symbol: str | None = None,
        after: int = 0,
    ) -> None:
        """Every chat request (mentioning `symbol`, if given) gets HTTP `status`, until `clear_faults()`;
        with `after`, only once the server has answered that many chat requests (an outage that
        begins mid-analysis, with no race against the analysis)."""
        self._add(_Fault("status", math.inf, symbol, status=status, retry_after=retry_after, after=after))

    def delay_next(self, n: int, seconds: float, *, symbol: str | None = None) -> None:
        """The next `n` chat requests are answered normally, but only after `seconds`."""
        self._add(_Fault("delay", n, symbol, seconds=seconds))

    def malformed_next(self, n: int, *, symbol: str | None = None) -> None:
        """The next `n` chat requests get content that is not valid JSON."""
        self._add(_Fault("malformed", n, symbol))

    def off_schema_next(
        self, n: int, *, answer: dict[str, Any] | None = None, symbol: str | None = None
    ) -> None:
        """The next `n` chat requests get valid JSON off the contract (default: winner not in the pair)."""
        self._add(_Fault("off_schema", n, symbol, answer=answer))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget faults and recorded requests."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def calls(self) -> int:
        """Chat completion requests received (each is a call one would pay for)."""
        with self._lock:
            return sum(1 for r in self._requests if r.path.endswith("/chat/completions"))

    def calls_for(self, symbol: str) -> int:
        """Chat completion requests whose prompt mentions `symbol`."""
        with self._lock:
            return sum(1 for r in self._requests if symbol in last_user_text(r.messages))

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, text: str) -> _Fault | None:
        with self._lock:
            arrived = len(self._requests)  # the current request is recorded already
            for fault in self._faults:
                if arrived <= fault.after:
                    continue
                if fault.remaining > 0 and (fault.symbol is None or fault.symbol in text):
                    fault.remaining -= 1
                    return fault
            return None

    def _record(self, request: web.Request, body: Mapping[str, Any]) -> RecordedRequest:
        auth = request.headers.get("Authorization", "")
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
        recorded = RecordedRequest(
            path=request.path,
            model=body.get("model"),
            messages=list(body.get("messages") or []),
            response_format=body.get("response_format"),
            headers=headers,
            has_bearer=auth.startswith("Bearer ") and len(auth) > len("Bearer "),
        )
        with self._lock:
            self._requests.append(recorded)
        return recorded

    # -- HTTP ------------------------------------------------------------------------------------

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._list_models)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Handlers still sleeping (a delayed answer the client gave up on) are cancelled, not leaked.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _auth_error(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            return _error(401, "You didn't provide an API key.", "invalid_request_error", None)
        token = auth[len("Bearer ") :].strip()
        if self._api_key is not None and token != self._api_key:
            return _error(
                401, f"Incorrect API key provided: {token}.", "invalid_request_error", "invalid_api_key"
            )
        return None

    async def _list_models(self, request: web.Request) -> web.Response:
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        names = self._models if self._models is not None else ["test-model"]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "local-test"} for n in names]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            self._record(request, {}).outcome = "400 bad json"
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error", None
            )
        record = self._record(request, body)  # recorded on arrival: a call counts even if never answered
        response, record.outcome, record.content, record.usage = await self._answer(request, body)
        return response

    async def _answer(
        self, request: web.Request, body: Mapping[str, Any]
    ) -> tuple[web.Response, str, str | None, dict[str, int] | None]:
        denied = self._auth_error(request)
        if denied is not None:
            return denied, "401", None, None
        model = body.get("model")
        if self._models is not None and model not in self._models:
            msg = f"The model `{model}` does not exist."
            return _error(404, msg, "invalid_request_error", "model_not_found"), "404", None, None

        messages = body.get("messages") or []
        text = last_user_text(messages)
        fault = self._take_fault(text)
        if fault is not None and fault.kind == "status":
            headers = {} if fault.retry_after is None else {"Retry-After": _header_value(fault.retry_after)}
            response = _error(
                fault.status, f"Scripted failure {fault.status}.", "server_error", None, headers
            )
            return response, f"status {fault.status}", None, None
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)

        with self._lock:
            policy, strengths = self._policy, self._strengths
        symbols = find_symbols(text, strengths or None)
        shown = list_enum(body.get("response_format"))
        if shown is not None and sorted(shown) != sorted(symbols):
            msg = (
                f"The schema's ranking enum {shown} does not match the symbols in the prompt {list(symbols)}."
            )
            return _error(400, msg, "invalid_request_error", None), "400 enum mismatch", None, None
        asked = reasons_enum(body.get("response_format"))
        if asked is not None and sorted(asked) != sorted(symbols):
            msg = (
                f"The schema's reasons enum {asked} does not match the symbols in the prompt {list(symbols)}."
            )
            return _error(400, msg, "invalid_request_error", None), "400 enum mismatch", None, None
        enum = schema_enum(body.get("response_format"))
        if enum is not None and sorted(enum) != sorted(symbols[:2]):
            msg = f"The schema's winner enum {enum} does not match the symbols in the prompt {list(symbols)}."
            return _error(400, msg, "invalid_request_error", None), "400 enum mismatch", None, None

        chat = ChatRequest(
            model=model, messages=messages, response_format=body.get("response_format"), symbols=symbols
        )
        if fault is not None and fault.kind == "malformed":
            content, outcome = '{"winner": "' + (symbols[0] if symbols else "") + '", "confid', "malformed"
        elif fault is not None and fault.kind == "off_schema":
            content, outcome = (
                json.dumps(fault.answer or {"winner": "NOT/INPAIR", "confidence": 0.9}),
                "off_schema",
            )
        else:
            try:
                content, outcome = policy(chat), "ok" if fault is None else f"delay {fault.seconds}"
            except ValueError as err:
                return _error(400, str(err), "invalid_request_error", None), "400 policy", None, None
        completion = _completion(model, messages, content)
        return web.json_response(completion), outcome, content, completion["usage"]


def _header_value(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _error(
    status: int, message: str, kind: str, code: str | None, headers: Mapping[str, str] | None = None
) -> web.Response:
    payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(payload, status=status, headers=dict(headers or {}))


def count_tokens(text: str) -> int:
    # A rough, deterministic stand-in for a tokenizer: about four characters per token.
    return max(1, math.ceil(len(text) / 4))


def _completion(model: str, messages: list[dict[str, Any]], content: str) -> dict[str, Any]:
    prompt_tokens = sum(count_tokens(str(m.get("content", ""))) for m in messages)
    completion_tokens = count_tokens(content)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_local_test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


__all__ = [
    "ChatRequest",
    "OpenAIServer",
    "Policy",
    "RecordedRequest",
    "StrengthJudge",
    "find_symbols",
    "list_enum",
    "reasons_enum",
    "last_user_text",
    "schema_enum",
]
