"""The sandbox against a real browser (#19, item 1), headless chromium as in test_sandbox_page.py:
a page served from another port of this machine can neither send as the admin nor read a chat,
nor post through the Bot API with the token that used to be public; the chat page opened with the
printed address works, never renders a javascript: link as a link, and without the secret shows
only a one-line refusal."""

import http.server
import json
import threading

import pytest

from sandbox.access import new_page_secret
from sandbox.cast import SANDBOX_CAST
from sandbox.launch import chat_page_url, new_bot_token, open_sandbox
from tests.conftest import wait_until
from tests.test_sandbox_page import Page, browser  # noqa: F401  (the browser fixture)

ALICE, BOB, CAROL = (p.user_id for p in SANDBOX_CAST.people)
OLD_PUBLIC_TOKEN = "7000000001:SANDBOX-local-only"

# What the attacker page did, and a few more tries; it writes what each try gave.
ATTACKER_PAGE = """<!doctype html><title>cute cats</title><pre id="out"></pre>
<script>
const SANDBOX = "%(sandbox)s", CAROL = %(carol)d;
const send = JSON.stringify({user_id: CAROL, chat_id: CAROL, text: "/schedule every=1h"});
const results = {};
async function attempt(name, fn) {
  try { results[name] = await fn(); } catch (e) { results[name] = "blocked: " + e.name; }
}
function image(src) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve("loaded"); img.onerror = () => resolve("error"); img.src = src;
  });
}
(async () => {
  await attempt("no-cors text/plain POST", async () => {
    await fetch(SANDBOX + "/api/send", {method: "POST", mode: "no-cors", body: send}); return "answered"; });
  await attempt("no-cors POST with credentials", async () => {
    await fetch(SANDBOX + "/api/send", {method: "POST", mode: "no-cors", credentials: "include",
                                       headers: {"Content-Type": "text/plain"}, body: send});
    return "answered"; });
  await attempt("JSON POST", async () => {
    const r = await fetch(SANDBOX + "/api/send", {method: "POST", body: send,
                                                  headers: {"Content-Type": "application/json"}});
    return "status " + r.status; });
  await attempt("read the chat", async () => {
    const r = await fetch(SANDBOX + "/api/chat?user_id=" + CAROL + "&chat_id=" + CAROL + "&since=-1&wait=0");
    return await r.text(); });
  await attempt("read the session", async () => (await fetch(SANDBOX + "/api/session")).text());
  await attempt("the old token through an image", () => image(SANDBOX + "/bot%(old)s/sendMessage?chat_id="
      + CAROL + "&parse_mode=HTML&text=" + encodeURIComponent('<a href="javascript:alert(1)">chart</a>')));
  document.getElementById("out").textContent = JSON.stringify(results);
  document.title = "done";
})();
</script>"""


@pytest.fixture
def run():
    token, secret = new_bot_token(), new_page_secret()
    server = open_sandbox(0, token=token, secret=secret)
    yield server, secret
    server.stop()


@pytest.fixture
def attacker(run):
    """A page on another port of this machine (another origin), aimed at the sandbox."""
    server, _ = run
    page = (ATTACKER_PAGE % {"sandbox": server.url, "carol": CAROL, "old": OLD_PUBLIC_TOKEN}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{site.server_address[1]}/"
    site.shutdown()
    site.server_close()


def everything_seen(server) -> tuple:
    chats = [p.user_id for p in SANDBOX_CAST.people] + [SANDBOX_CAST.group_id]
    return server.pending_updates, [[m.text for m in server.messages(c)] for c in chats]


def test_a_page_on_another_local_port_can_neither_send_nor_read(run, attacker, browser):
    server, _ = run
    before = everything_seen(server)
    browser.get(attacker)
    wait_until(
        lambda: browser.title == "done",
        timeout=30,
        interval=0.1,
        message="the attacker's page to finish its tries",
    )
    results = json.loads(browser.find_element("id", "out").text)
    assert results["read the chat"].startswith("blocked"), results
    assert results["read the session"].startswith("blocked"), results
    assert results["JSON POST"].startswith("blocked"), results  # its preflight is never approved
    assert results["the old token through an image"] == "error", results
    # The tries reached the server (the old token's call was answered 401) and changed nothing.
    assert [c.status for c in server.calls_of("sendMessage")] == [401]
    assert everything_seen(server) == before


def plant_bot_message(server, chat_id: int, text: str, entities: list, markup: dict) -> int:
    """A bot message carrying links the Bot API now refuses, put straight into the chat (only a
    test can): what the page would show of one stored before the check, or by any other way."""
    with server._lock:
        message = server._add_message(
            server._chat(chat_id),
            from_bot=True,
            from_user=server._bot_sender,
            text=text,
            entities=entities,
            reply_markup=markup,
        )
        server.version += 1
    return message.message_id


def test_the_page_never_renders_a_javascript_link_and_needs_the_secret(run, browser):
    server, secret = run
    browser.get(f"{server.url}/")  # the address without the secret
    assert "needs its secret" in browser.find_element("tag name", "body").text

    page = Page(browser, chat_page_url(server, secret))  # the address `make run` prints
    text = "chart here and binance"
    links = [
        {"type": "text_link", "offset": 0, "length": 5, "url": "javascript:fetch('/api/chat')"},
        {"type": "text_link", "offset": 6, "length": 4, "url": " java\tscript:alert(1)"},
        {"type": "text_link", "offset": 15, "length": 7, "url": "https://www.binance.com/"},
    ]
    buttons = {
        "inline_keyboard": [
            [
                {"text": "Open", "url": "javascript:alert(2)"},
                {"text": "Binance", "url": "https://www.binance.com/"},
            ]
        ]
    }
    message_id = plant_bot_message(server, ALICE, text, links, buttons)
    selector = f'li[data-message-id="{message_id}"]'
    page.wait_for(lambda: browser.find_elements("css selector", selector), "the planted message")
    hrefs = browser.execute_script(
        f"return [...document.querySelectorAll('{selector} [href]')].map(a => a.getAttribute('href'));"
    )
    assert hrefs == ["https://www.binance.com/"]
    refused = browser.find_elements("css selector", f"{selector} .refused-link")
    assert [r.text for r in refused] == ["chart", "here"]
    open_button, binance = browser.find_elements("css selector", f"{selector} .keyboard button")
    assert not open_button.is_enabled() and binance.is_enabled()
    refused[0].click()
    assert len(browser.window_handles) == 1

    # The page's own calls pass every check: a message typed there reaches the bot.
    page.type("/help")
    page.wait_for(lambda: any(m["text"] == "/help" for m in page.chat()), "the typed message")
    assert len(server.pending_updates) == 1
