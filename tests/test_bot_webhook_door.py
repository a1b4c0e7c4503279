"""The bot's webhook door alone (bot/webhook_door.py), in process in front of a real PTB
Application whose one handler records the updates it gets; and how the
webhook is set at start-up and left on SIGTERM (bot/webhook.py). The door in front of the real bot
processes, behind a load balancer: tests/test_bot_webhooks.py."""

import json
import os

import pytest

from tests.conftest import wait_until
from tests.webhook_door_app import DOOR_HEADERS, DOOR_URL, door_in_front_of
from tests.webhook_instances import SECRET, post_update, rank_update

FULL_UPDATE = rank_update(7, 100, "/rank top=3")


def through_the_door(requests: list[dict], extra_hosts: tuple[str, ...] = ()) -> tuple[list, list[int]]:
    """Send `requests` (aiohttp request keywords, Telegram's by default) to the webhook app in
    front of a running Application (its bot on the sandbox's Bot API server); their (status,
    text, headers) and the update ids its handlers got."""
    import asyncio

    from sandbox import BotApiServer

    async def run(api: BotApiServer) -> tuple[list, list[int]]:
        handled: list[int] = []

        async def record(update, context: object) -> None:
            handled.append(update.update_id)

        answers = []
        async with door_in_front_of(api, record, extra_hosts=extra_hosts) as (application, client):
            await application.start()
            try:
                for request in requests:
                    sent = {"method": "POST", "path": "/telegram", "json": FULL_UPDATE}
                    sent["headers"] = DOOR_HEADERS
                    sent.update(request)
                    async with client.request(sent.pop("method"), sent.pop("path"), **sent) as answer:
                        answers.append((answer.status, await answer.text(), dict(answer.headers)))
            finally:
                await application.stop()
        return answers, handled

    with BotApiServer(token="1:DOOR") as api:
        return asyncio.run(run(api))


def test_the_door_answers_telegram_only_once_the_handlers_are_done_and_503_when_not_running():
    """200 only after the handlers ran: an instance killed while handling never confirmed the
    update, so Telegram delivers it again (to another instance). Before start and after stop,
    503: Telegram retries."""
    import asyncio

    from sandbox import BotApiServer

    async def run(api: BotApiServer) -> tuple[int, bool, int, int]:
        release, entered = asyncio.Event(), asyncio.Event()

        async def slow(update, context: object) -> None:
            entered.set()
            await release.wait()

        sent = {"json": FULL_UPDATE, "headers": DOOR_HEADERS}
        async with door_in_front_of(api, slow) as (application, client):
            before = (await client.post("/telegram", **sent)).status
            await application.start()
            request = asyncio.ensure_future(client.post("/telegram", **sent))
            await asyncio.wait_for(entered.wait(), 10)
            await asyncio.sleep(0.2)
            unanswered_while_handling = not request.done()
            release.set()
            during = (await request).status
            await application.stop()
            after = (await client.post("/telegram", **sent)).status
        return before, unanswered_while_handling, during, after

    with BotApiServer(token="1:DOOR") as api:
        assert asyncio.run(run(api)) == (503, True, 200, 503)


def headers(**changes: str | None) -> dict[str, str]:
    """Telegram's headers with `changes` (None: left out); `_` in a name is `-`."""
    sent: dict[str, str | None] = dict(DOOR_HEADERS)
    sent.update({name.replace("_", "-"): value for name, value in changes.items()})
    return {name: value for name, value in sent.items() if value is not None}


async def chunks(size: int):
    """A body sent chunked (no Content-Length), `size` bytes of JSON-looking text."""
    yield b'{"update_id": 8, "padding": "'
    for _ in range(size // 65536):
        yield b"x" * 65536
    yield b'"}'


@pytest.mark.parametrize(
    "request_, status, says",
    [
        ({"headers": headers(Host="attacker.example")}, 403, "host name is not served"),
        ({"headers": headers(Host="bot.example.com:8443")}, 403, "host name is not served"),
        ({"headers": headers(Host=None)}, 403, "host name is not served"),
        ({"headers": headers(Origin="https://page.example")}, 403, "web pages"),
        (
            {
                "method": "OPTIONS",
                "headers": headers(Origin="https://page.example", Access_Control_Request_Method="POST"),
            },
            403,
            "web pages",
        ),
        ({"headers": headers(X_Telegram_Bot_Api_Secret_Token=None)}, 403, "secret"),
        ({"headers": headers(X_Telegram_Bot_Api_Secret_Token="wrong")}, 403, "secret"),
        ({"headers": headers(X_Telegram_Bot_Api_Secret_Token=SECRET[:-1])}, 403, "secret"),
        ({"headers": headers(X_Telegram_Bot_Api_Secret_Token=SECRET + "x")}, 403, "secret"),
        (
            {"json": None, "data": json.dumps(FULL_UPDATE), "headers": headers(Content_Type="text/plain")},
            415,
            "application/json",
        ),
        (
            {
                "json": None,
                "data": b'{"update_id": 7, "message": ',
                "headers": headers(Content_Type="application/json"),
            },
            400,
            "not JSON",
        ),
        (
            {"json": None, "data": b"\xff\xfe", "headers": headers(Content_Type="application/json")},
            400,
            "not JSON",
        ),
        (
            {"json": None, "data": b"[" * 100_000, "headers": headers(Content_Type="application/json")},
            400,
            "not JSON",
        ),
        ({"json": [FULL_UPDATE]}, 400, "not a Telegram Update"),
        ({"json": {"update_id": "7"}}, 400, "not a Telegram Update"),
        ({"json": {"update_id": True}}, 400, "not a Telegram Update"),
        ({"json": {"update_id": 7, "message": {"text": "/rank"}}}, 400, "not a Telegram Update (KeyError)"),
        ({"json": {**FULL_UPDATE, "padding": "x" * (1 << 20)}}, 413, "Payload Too Large"),
        (
            {"json": None, "data": chunks(1 << 21), "headers": headers(Content_Type="application/json")},
            413,
            "Too Large",
        ),
        ({"method": "GET"}, 405, "Method Not Allowed"),
        ({"path": "/"}, 404, "Not Found"),
        ({"method": "GET", "path": "/telegram/../admin"}, 404, "Not Found"),
    ],
    ids=lambda value: "" if isinstance(value, (dict, int)) else str(value)[:40],
)
def test_the_webhook_door_refuses_in_one_line_and_handles_nothing(request_, status, says, caplog):
    answers, handled = through_the_door([request_, {}])  # then Telegram's own request: the marker
    (got, text, sent_headers), marker = answers
    assert (got, marker[:2], handled) == (status, (200, ""), [7]), text
    assert says in text and text.count("\n") == 1
    assert not any(name.lower().startswith("access-control") for name in sent_headers)
    refusals = [r.getMessage() for r in caplog.records if "webhook: refused" in r.getMessage()]
    assert len(refusals) == 1 and SECRET not in refusals[0] and "\n" not in refusals[0], refusals


def test_the_webhook_door_answers_the_urls_host_and_the_hosts_a_balancer_sends():
    """Host as Telegram sends it (the default port written or not, any case), and a rewritten
    Host only when TELEGRAM_WEBHOOK_HOSTS names it."""
    as_sent = [
        {"headers": headers(Host=host)}
        for host in ("bot.example.com", "BOT.example.com:443", "10.0.0.5:8443")
    ]
    answers, handled = through_the_door(as_sent)
    assert [answer[0] for answer in answers] == [200, 200, 403] and handled == [7, 7]
    answers, handled = through_the_door(as_sent, extra_hosts=("10.0.0.5:8443",))
    assert [answer[0] for answer in answers] == [200, 200, 200] and handled == [7, 7, 7]


def test_the_extra_webhook_hosts_are_a_comma_list(monkeypatch):
    from analysis.settings import Settings

    monkeypatch.setenv("TELEGRAM_WEBHOOK_HOSTS", " 10.0.0.5:8443, Bot-Backend ,")
    assert Settings().telegram_webhook_hosts == ["10.0.0.5:8443", "bot-backend"]


def test_set_webhook_is_retried_until_the_bot_api_server_takes_it(monkeypatch):
    """Down (502), then flood control (429, retry after 3 s), then set: with the URL, the secret
    and the two kinds of update the bot handles, after waits of 1 s, then the 3 s asked."""
    import asyncio

    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # as bot.app's main() sets it

    from telegram import Bot

    from bot.webhook import set_webhook
    from tests.webhook_instances import FlakyBotApi

    api = FlakyBotApi([(502, "Bad Gateway"), (429, "Too Many Requests: retry after 3", 3)])
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def run() -> None:
        async with Bot("1:TEST", base_url=api.url + "/bot") as bot:
            await set_webhook(bot, DOOR_URL, SECRET, sleep=sleep)

    try:
        asyncio.run(run())
    finally:
        api.close()
    assert waits == [1.0, 3.0] and len(api.webhooks) == 3
    assert api.webhooks[-1]["url"] == DOOR_URL and api.webhooks[-1]["secret_token"] == SECRET
    assert json.loads(api.webhooks[-1]["allowed_updates"]) == ["message", "callback_query"]


def test_a_bot_still_setting_its_webhook_stops_at_once_on_sigterm(redis_url, tmp_path):
    """The Bot API server keeps refusing setWebhook: the bot says so once per try, its door is
    already open (the secret is asked for), and SIGTERM ends it cleanly, without a traceback."""
    import signal
    import subprocess
    import sys

    from tests.servers import ROOT, free_port
    from tests.webhook_instances import FlakyBotApi

    api, port, log = FlakyBotApi([(502, "Bad Gateway")], forever=True), free_port(), tmp_path / "bot.log"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TELEGRAM_BOT_TOKEN": "123:abc",
        "TELEGRAM_API_BASE_URL": api.url,
        "TELEGRAM_WEBHOOK_URL": "https://bot.example.com/telegram",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_WEBHOOK_PORT": str(port),
        "MARKETRANK_VAR_DIR": str(tmp_path),
    }
    with open(log, "wb") as out:
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until(
            lambda: log.read_text().count("setWebhook failed") >= 2 or bot.poll() is not None,
            timeout=60,
            message="two tries of setWebhook",
        )
        assert post_update(f"http://127.0.0.1:{port}/telegram", {}, None, host="bot.example.com") == 403
        bot.send_signal(signal.SIGTERM)
        assert bot.wait(timeout=15) == 0
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait()
        api.close()
    text = log.read_text()
    tries = [line for line in text.splitlines() if "setWebhook failed" in line]
    assert "(Bad Gateway); retrying in 1 s" in tries[0] and "retrying in 2 s" in tries[1], text
    assert (
        "bot stopped" in text and "Traceback" not in text and "123:abc" not in text and SECRET not in text
    ), text


def test_a_webhook_port_already_taken_is_one_line_and_exit_1(redis_url, tmp_path):
    import socket
    import subprocess
    import sys

    from tests.servers import ROOT
    from tests.webhook_instances import FlakyBotApi

    api, taken = FlakyBotApi([]), socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TELEGRAM_BOT_TOKEN": "123:abc",
        "TELEGRAM_API_BASE_URL": api.url,
        "TELEGRAM_WEBHOOK_URL": "https://bot.example.com/telegram",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_WEBHOOK_PORT": str(port),
        "MARKETRANK_VAR_DIR": str(tmp_path),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        taken.close()
        api.close()
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and errors == [
        (
            f"error: cannot listen on 127.0.0.1:{port} (address already in use); "
            "set TELEGRAM_WEBHOOK_LISTEN / TELEGRAM_WEBHOOK_PORT"
        )
    ], done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "bot stopped" in done.stderr and "WARNING" not in done.stderr
    assert api.webhooks == []  # nothing set when the door could not open
