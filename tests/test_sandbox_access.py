"""Who may drive the sandbox (#19, item 1), over plain HTTP: only the chat page `make run` printed
(it carries the run's secret), on this machine's loopback name, from its own origin, with JSON.
Anything else is refused in one line and nothing reaches the bot or any chat. Links are limited
to the schemes Telegram accepts. (A real browser on another origin: test_sandbox_cross_origin.py.)"""

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sandbox import BotApiServer
from sandbox.access import SECRET_HEADER, new_page_secret
from sandbox.cast import SANDBOX_CAST
from sandbox.launch import chat_page_url, new_bot_token, open_sandbox
from tests.servers import free_port

ALICE, BOB, CAROL = (p.user_id for p in SANDBOX_CAST.people)
GROUP = SANDBOX_CAST.group_id
OLD_PUBLIC_TOKEN = "7000000001:SANDBOX-local-only"  # what sandbox/cast.py fixed before #19
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def run():
    """A sandbox as `make run` opens it: a bot token and a page secret of its own."""
    token, secret = new_bot_token(), new_page_secret()
    server = open_sandbox(0, token=token, secret=secret)
    yield server, secret
    server.stop()


def http(server, path: str, *, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, text) of one request, as any client could send it."""
    request = urllib.request.Request(f"{server.url}{path}", data=body, headers=headers or {})
    try:
        with _HTTP.open(request, timeout=10) as answer:
            return answer.status, answer.headers, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


def as_page(server, secret: str, **extra: str) -> dict:
    """The headers the page's own script sends (tests take one away or change one)."""
    headers = {SECRET_HEADER: secret, "Origin": server.url, "Content-Type": "application/json"}
    headers.update(extra)
    return {name: value for name, value in headers.items() if value is not None}


def what_anyone_sees(server) -> tuple:
    """What the bot would get and what every chat of the cast shows."""
    chats = [p.user_id for p in SANDBOX_CAST.people] + [GROUP]
    return (
        server.pending_updates,
        [[(m.from_user.get("id"), m.text, m.caption) for m in server.messages(c)] for c in chats],
    )


def assert_refused(server, status: int, answer: tuple, expected: int, says: str) -> None:
    code, _, text = answer
    assert code == expected, (code, text)
    error = json.loads(text)
    message = error.get("error") or error.get("description")
    assert says in message and "\n" not in message, message
    assert "people" not in text and "messages" not in text  # nothing of the sandbox's data


SEND = json.dumps({"user_id": CAROL, "chat_id": CAROL, "text": "/schedule every=1h"}).encode()


# --- Host: only the loopback name and port the server listens on --------------------------------
@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:{port}",
        "127.0.0.1.nip.io:{port}",
        "127.0.0.1:{other}",
        "localhost.attacker.example:{port}",
        "",
    ],
)
def test_a_foreign_host_is_refused_on_every_route(run, host):
    server, secret = run
    host = host.format(port=server.port, other=free_port())
    before = what_anyone_sees(server)
    for path, body in [
        (f"/?secret={secret}", None),
        ("/api/session", None),
        (f"/api/chat?user_id={CAROL}&chat_id={CAROL}&since=-1", None),
        ("/api/send", SEND),
        (f"/bot{server.token}/getMe", None),
        (f"/bot{server.token}/sendMessage?chat_id={CAROL}&text=hi", None),
    ]:
        answer = http(server, path, body=body, headers={**as_page(server, secret), "Host": host})
        assert_refused(server, 403, answer, 403, "answers only as 127.0.0.1")
    assert what_anyone_sees(server) == before
    assert server.calls_of("sendMessage") == []  # refused before it was a Bot API call
    # The server's own names pass: the address as printed, and localhost.
    for own in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        headers = {**as_page(server, secret, Origin=f"http://{own}"), "Host": own}
        assert http(server, "/api/session", headers=headers)[0] == 200


# --- the run's secret ----------------------------------------------------------------------------
def test_without_the_runs_secret_the_page_and_its_api_refuse(run):
    server, secret = run
    before = what_anyone_sees(server)
    other_run = new_page_secret()
    reads = [
        "/",
        "/api/session",
        f"/api/chat?user_id={CAROL}&chat_id={CAROL}&since=-1",
        "/api/photo/AgAC00000001",
        "/api/answer?query_id=1",
    ]
    for wrong in (None, "", other_run, secret[:-1], secret.upper()):
        for path in reads:
            answer = http(server, path, headers=as_page(server, wrong, Origin=None))
            assert_refused(server, 401, answer, 401, "needs its secret")
        for path in ("/api/send", "/api/press"):
            answer = http(server, path, body=SEND, headers=as_page(server, wrong))
            assert_refused(server, 401, answer, 401, "needs its secret")
    # On a POST the secret in the address does not count: only the page's script sends the header.
    answer = http(server, f"/api/send?secret={secret}", body=SEND, headers=as_page(server, None))
    assert_refused(server, 401, answer, 401, "needs its secret")
    assert what_anyone_sees(server) == before
    # The printed address opens the page; the page's script and style hold no data and need none.
    status, _, page = http(server, "/" + chat_page_url(server, secret).split("/", 3)[3])
    assert status == 200 and "local sandbox" in page
    assert http(server, "/static/app.js")[0] == 200
    assert http(server, "/api/session", headers=as_page(server, secret, Origin=None))[0] == 200


# --- Origin: the page's own, on every change -----------------------------------------------------
def test_another_origin_cannot_act_or_read_even_with_the_secret(run):
    server, secret = run
    before = what_anyone_sees(server)
    elsewhere = [
        f"http://127.0.0.1:{free_port()}",
        "http://attacker.example",
        "null",
        f"https://127.0.0.1:{server.port}",
        f"http://localhost:{server.port}",
    ]
    for origin in elsewhere:
        answer = http(server, "/api/send", body=SEND, headers=as_page(server, secret, Origin=origin))
        assert_refused(server, 403, answer, 403, "another page")
        answer = http(
            server,
            f"/api/chat?user_id={CAROL}&chat_id={CAROL}&since=-1&wait=0",
            headers=as_page(server, secret, Origin=origin),
        )
        assert_refused(server, 403, answer, 403, "another page")
    answer = http(server, "/api/send", body=SEND, headers=as_page(server, secret, Origin=None))
    assert_refused(server, 403, answer, 403, "Origin header")
    for site in ("cross-site", "same-site"):
        answer = http(
            server, "/api/send", body=SEND, headers=as_page(server, secret, **{"Sec-Fetch-Site": site})
        )
        assert_refused(server, 403, answer, 403, "another site")
    assert what_anyone_sees(server) == before
    status, _, sent = http(server, "/api/send", body=SEND, headers=as_page(server, secret))
    assert status == 200 and server.pending_updates == [json.loads(sent)["update_id"]]


# --- JSON only -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        None,
    ],
)
def test_a_body_not_declared_json_is_refused_415(run, content_type):
    server, secret = run
    before = what_anyone_sees(server)
    answer = http(
        server, "/api/send", body=SEND, headers=as_page(server, secret, **{"Content-Type": content_type})
    )
    assert_refused(server, 415, answer, 415, "application/json")
    assert what_anyone_sees(server) == before


# --- no inline script, no framing --------------------------------------------------------------------
def test_the_page_runs_no_inline_script_and_cannot_be_framed(run):
    server, secret = run
    status, headers, page = http(server, f"/?secret={secret}")
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and "unsafe" not in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"  # the secret in the address goes nowhere
    for answer in (
        http(server, "/api/session", headers=as_page(server, secret)),
        http(server, "/api/session"),
    ):
        assert answer[1]["Cross-Origin-Resource-Policy"] == "same-origin"
    static = Path(__file__).resolve().parent.parent / "sandbox" / "static" / "index.html"
    assert page == static.read_text()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", page), "an inline event handler"


# --- the bot's token ------------------------------------------------------------------------------------
def test_the_bot_token_is_made_per_run_and_the_old_public_one_is_refused(run):
    server, _ = run
    tokens = {new_bot_token() for _ in range(3)} | {server.token}
    assert len(tokens) == 4 and OLD_PUBLIC_TOKEN not in tokens
    assert all(re.fullmatch(r"7000000001:[A-Za-z0-9_-]{35}", t) for t in tokens)
    assert not hasattr(SANDBOX_CAST, "token")
    before = what_anyone_sees(server)
    status, _, text = http(server, f"/bot{OLD_PUBLIC_TOKEN}/sendMessage?chat_id={CAROL}&text=hi")
    assert status == 401 and json.loads(text)["description"] == "Unauthorized"
    assert what_anyone_sees(server) == before


# --- links: http, https and tg only, as Telegram ---------------------------------------------------------
BAD_LINKS = [
    "javascript:fetch('/api/chat?user_id=710003')",
    "JavaScript:alert(1)",
    " java\tscript:alert(1)",
    "\x01javascript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "blob:http://127.0.0.1/x",
    "",
]


@pytest.fixture
def api():
    """The Bot API server without flood control (these tests write fast)."""
    with BotApiServer(token=new_bot_token()) as server:
        yield server


def bot_api(server, method: str, params: dict) -> tuple[int, dict]:
    status, _, text = http(
        server,
        f"/bot{server.token}/{method}",
        body=json.dumps(params).encode(),
        headers={"Content-Type": "application/json"},
    )
    return status, json.loads(text)


@pytest.mark.parametrize("url", BAD_LINKS)
def test_a_link_to_another_scheme_is_refused_by_the_bot_api_and_stored_nowhere(api, url):
    server = api
    status, sent = bot_api(
        server,
        "sendMessage",
        {
            "chat_id": ALICE,
            "text": "card",
            "reply_markup": {"inline_keyboard": [[{"text": "Chart", "callback_data": "c"}]]},
        },
    )
    assert status == 200
    message_id = sent["result"]["message_id"]
    before = what_anyone_sees(server)
    link = {"type": "text_link", "offset": 0, "length": 4, "url": url}
    button = {"inline_keyboard": [[{"text": "open", "url": url}]]}
    attempts = [
        ("sendMessage", {"chat_id": ALICE, "text": f'<a href="{url}">here</a>', "parse_mode": "HTML"}),
        ("sendMessage", {"chat_id": ALICE, "text": "here", "entities": [link]}),
        ("sendMessage", {"chat_id": ALICE, "text": "here", "reply_markup": button}),
        ("editMessageText", {"chat_id": ALICE, "message_id": message_id, "text": "here", "entities": [link]}),
        ("editMessageReplyMarkup", {"chat_id": ALICE, "message_id": message_id, "reply_markup": button}),
    ]
    for method, params in attempts:
        status, answer = bot_api(server, method, params)
        assert status == 400 and answer["ok"] is False, (method, answer)
        assert answer["description"].startswith("Bad Request: "), answer
        assert ("BUTTON_URL_INVALID" if "reply_markup" in params else "http, https and tg") in answer[
            "description"
        ]
    assert what_anyone_sees(server) == before
    assert [b.url for row in server.messages(ALICE)[-1].buttons for b in row] == [None]


def test_http_https_and_tg_links_still_go_through(api):
    server = api
    for url in (
        "https://www.binance.com/en/trade/BTC_USDT",
        "http://127.0.0.1:5555/",
        "tg://resolve?domain=x",
        "HTTPS://EXAMPLE.COM/",
    ):
        status, _ = bot_api(
            server,
            "sendMessage",
            {
                "chat_id": ALICE,
                "text": f'<a href="{url}">here</a>',
                "parse_mode": "HTML",
                "reply_markup": {"inline_keyboard": [[{"text": "open", "url": url}]]},
            },
        )
        assert status == 200
        assert server.messages(ALICE)[-1].entities[0]["url"] == url
