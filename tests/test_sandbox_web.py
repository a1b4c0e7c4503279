"""The chat page's JSON API (`sandbox/web.py`) without a bot: what the page may do, and the one-line
answer to anything else, with nothing queued for the bot."""

import json
import urllib.error
import urllib.request

import pytest

from sandbox.access import SECRET_HEADER
from sandbox.cast import SANDBOX_CAST
from sandbox.launch import open_sandbox

ALICE, BOB, CAROL = (p.user_id for p in SANDBOX_CAST.people)
GROUP = SANDBOX_CAST.group_id
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SECRET = "page-secret-of-this-test"


@pytest.fixture
def sandbox():
    server = open_sandbox(0, token="5151:SANDBOX", secret=SECRET)
    yield server
    server.stop()


def call(sandbox, path: str, body: dict | None = None) -> tuple[int, dict]:
    """The API as the page's script calls it: the secret, its own Origin, JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{sandbox.url}{path}",
        data=data,
        headers={"Content-Type": "application/json", SECRET_HEADER: SECRET, "Origin": sandbox.url},
    )
    try:
        with _HTTP.open(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_the_page_and_its_session_say_it_is_a_local_sandbox(sandbox):
    with _HTTP.open(f"{sandbox.url}/?secret={SECRET}", timeout=5) as response:
        page = response.read().decode()
    assert "local sandbox" in page and "not Telegram" in page
    for name in (f"?secret={SECRET}", "static/app.js", "static/style.css"):  # offline: nothing from elsewhere
        with _HTTP.open(f"{sandbox.url}/{name}", timeout=5) as response:
            assert "://" not in response.read().decode()
    status, session = call(sandbox, "/api/session")
    assert status == 200 and session["sandbox"] is True
    assert [(p["role"], p["user_id"]) for p in session["people"]] == [
        ("trader", ALICE),
        ("second trader", BOB),
        ("admin", CAROL),
    ]
    assert session["group"]["chat_id"] == GROUP
    with pytest.raises(urllib.error.HTTPError):  # only the page's own files are served
        _HTTP.open(f"{sandbox.url}/static/..%2Fweb.py", timeout=5)


def test_a_message_from_the_page_is_an_update_for_the_bot_and_shows_in_the_chat(sandbox):
    status, sent = call(sandbox, "/api/send", {"user_id": BOB, "chat_id": GROUP, "text": "/rank top=3"})
    assert status == 200 and sandbox.pending_updates == [sent["update_id"]]
    status, chat = call(sandbox, f"/api/chat?user_id={ALICE}&chat_id={GROUP}&since=-1")
    assert [(m["from"]["first_name"], m["text"]) for m in chat["messages"]] == [("Bob", "/rank top=3")]
    # Nothing changed since that version: the call waits, then answers the same version.
    status, again = call(
        sandbox, f"/api/chat?user_id={ALICE}&chat_id={GROUP}&since={chat['version']}&wait=0.3"
    )
    assert again["version"] == chat["version"]


@pytest.mark.parametrize(
    "body, says",
    [
        ({"user_id": 999, "chat_id": 999, "text": "/start"}, "not in chat"),
        ({"user_id": ALICE, "chat_id": BOB, "text": "/start"}, "not in chat"),
        ({"user_id": "alice", "chat_id": GROUP, "text": "/start"}, "must be numbers"),
        ({"user_id": ALICE, "chat_id": ALICE, "text": "   "}, "type a message"),
        ({"user_id": ALICE, "chat_id": ALICE, "text": "x" * 4097}, "at most 4096"),
        ({"user_id": ALICE, "chat_id": ALICE, "text": 5}, "type a message"),
    ],
)
def test_bad_messages_are_refused_in_one_line_and_queue_nothing(sandbox, body, says):
    status, answer = call(sandbox, "/api/send", body)
    assert status == 400 and says in answer["error"] and "\n" not in answer["error"]
    assert sandbox.pending_updates == []


def test_bad_presses_are_refused_in_one_line_and_queue_nothing(sandbox):
    press = {"user_id": ALICE, "chat_id": ALICE, "message_id": 1, "data": "x"}
    status, answer = call(sandbox, "/api/press", press)
    assert status == 400 and "no message 1" in answer["error"]
    status, answer = call(sandbox, "/api/press", {**press, "data": "d" * 65})
    assert status == 400 and "64" in answer["error"]
    status, answer = call(sandbox, "/api/press", {**press, "message_id": "1"})
    assert status == 400 and "message_id" in answer["error"]
    status, answer = call(sandbox, f"/api/chat?user_id={ALICE}&chat_id={ALICE}&since=soon")
    assert status == 400 and answer["error"].startswith("bad query")
    status, answer = call(sandbox, "/api/answer?query_id=nope")
    assert status == 400 and answer["error"] == "unknown query_id"
    assert sandbox.pending_updates == []
