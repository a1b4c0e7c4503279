"""The sandbox's Bot API server plays Telegram's webhook: setWebhook / getWebhookInfo /
deleteWebhook, updates POSTed as JSON with the secret header, retried until the bot answers 2xx,
and getUpdates refused while a webhook is set."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox import BotApiServer
from sandbox.webhook import SECRET_HEADER

TOKEN = "123:TEST"
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Receiver:
    """A webhook endpoint that answers `statuses` in turn (then 200) and keeps what it got."""

    def __init__(self, statuses: list[int] | None = None):
        self.statuses = list(statuses or [])
        self.got: list[tuple[str | None, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.got.append((self.headers.get(SECRET_HEADER), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def call(api: BotApiServer, method: str, **params: object) -> dict:
    request = urllib.request.Request(
        f"{api.base_url}{api.token}/{method}",
        data=json.dumps(params).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with _HTTP.open(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


@pytest.fixture
def api():
    with BotApiServer(token=TOKEN) as server:
        server.webhook_retry_s = 0.05
        yield server


def test_updates_go_to_the_webhook_with_the_secret_and_a_failed_delivery_is_retried(api):
    receiver = Receiver(statuses=[500, 502])
    try:
        assert call(api, "setWebhook", url=receiver.url, secret_token="s3cret-_X")["result"] is True
        update_id = api.send_message(7, "/start")
        api.wait_for(lambda: not api.pending_updates, timeout=10)
        # Two failed answers, then the bot's 200: the same update three times, always with the secret.
        assert [body["update_id"] for _, body in receiver.got] == [update_id] * 3
        assert {secret for secret, _ in receiver.got} == {"s3cret-_X"}
        assert receiver.got[-1][1]["message"]["text"] == "/start"
        info = call(api, "getWebhookInfo")["result"]
        assert info["url"] == receiver.url and info["pending_update_count"] == 0
        assert "502" in info["last_error_message"]
        # While the webhook is set, long polling is refused as on Telegram.
        refused = call(api, "getUpdates", timeout=0)
        assert refused["error_code"] == 409 and "webhook is active" in refused["description"]
        # Deleted: updates wait for getUpdates again, none is posted.
        assert call(api, "deleteWebhook")["result"] is True
        later = api.send_message(7, "/help")
        assert [u["update_id"] for u in call(api, "getUpdates", timeout=0)["result"]] == [later]
        assert len(receiver.got) == 3 and call(api, "getWebhookInfo")["result"]["url"] == ""
    finally:
        receiver.close()


def test_an_unreachable_webhook_keeps_the_update_until_it_answers(api):
    receiver = Receiver()
    url = receiver.url
    receiver.close()  # nobody listens there now
    assert call(api, "setWebhook", url=url, secret_token="abc")["ok"]
    update_id = api.send_message(7, "/start")
    api.wait_for(lambda: len(api.webhook_posts) >= 2, timeout=10)  # tried, failed, tried again
    assert api.webhook_posts[:2] == [(update_id, None)] * 2  # no HTTP answer at all
    assert "Connection failed" in call(api, "getWebhookInfo")["result"]["last_error_message"]
    assert api.pending_updates == [update_id]
    receiver = Receiver()
    try:
        assert call(api, "setWebhook", url=receiver.url, secret_token="abc")["ok"]
        api.wait_for(lambda: not api.pending_updates, timeout=10)
        assert [body["update_id"] for _, body in receiver.got] == [update_id]
    finally:
        receiver.close()


@pytest.mark.parametrize(
    "params, wording",
    [
        ({"url": "ftp://example.com/hook"}, "HTTPS URL must be provided"),
        ({"url": "https://example.com/hook", "secret_token": "no spaces allowed"}, "unallowed characters"),
    ],
)
def test_a_bad_webhook_is_refused_with_telegrams_words(api, params, wording):
    answer = call(api, "setWebhook", **params)
    assert answer["error_code"] == 400 and wording in answer["description"]
    assert call(api, "getWebhookInfo")["result"]["url"] == ""
