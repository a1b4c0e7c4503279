"""Several bot instances on Telegram's webhook behind one load balancer (a round-robin proxy):
every update is handled once, every card is edited by one instance at a time and ends on the
final state, a killed instance's cards are kept current by the other, and a request without the
webhook's secret, for another Host, from a web page or with a bad body is refused and handled
nowhere (each check alone: tests/test_bot_webhook_door.py). The 200-tap version is
bench/webhooks_bench.py (`make bench-webhooks`)."""

import json
import os
import random

import pytest

from analysis.markets.demo import DEMO_MARKETS
from analysis.models import Status
from analysis.service import Actor
from bot import callbacks
from sandbox import BotApiServer
from tests.conftest import wait_until
from tests.helpers import assert_history_is_one_clean_chain
from tests.test_bot import analysis_id_of, status_of, wait_for_card, wait_for_status
from tests.webhook_instances import (
    SECRET,
    Instances,
    overlapping_edits,
    post,
    post_update,
    preflight,
    rank_update,
    repeated_edits,
)

pytestmark = pytest.mark.usefixtures("worker")


TAP_ROUNDS = 5  # per trader: Refresh, Pause, Resume -> 4 traders x 5 x 3 = 60 taps


@pytest.fixture
def api():
    with BotApiServer(token=f"{random.randrange(10**6, 10**9)}:TEST") as server:
        server.webhook_retry_s = 0.1
        yield server


@pytest.fixture
def traders() -> list[int]:
    base = random.randrange(10**8, 10**9, 10)
    return [base + i for i in range(1, 5)]


# Requests to a bot instance with the right secret and something else wrong: (how it differs from
# Telegram's POST, the status, what the one-line answer says). `host`: the Host sent (default: the
# webhook URL's); `body`: "cut" = the update's JSON cut short, "huge" = padded past 1 MiB.
DOOR_REFUSALS = {
    "a foreign Host (DNS rebinding)": ({"host": "attacker.example"}, 403, "host name is not served"),
    "the instance's own address as Host": ({"host": "own"}, 403, "host name is not served"),
    "a web page (Origin)": ({"headers": {"Origin": "https://page.example"}}, 403, "web pages"),
    "not JSON": ({"body": "cut"}, 400, "not JSON"),
    "JSON that is no Update": ({"body": "list"}, 400, "not a Telegram Update"),
    "not declared JSON": ({"headers": {"Content-Type": "text/plain"}}, 415, "application/json"),
    "over 1 MiB": ({"body": "huge"}, 413, "Payload Too Large"),
}


def door_request(kwargs: dict, update: dict, host: str) -> dict:
    """`post`'s keyword arguments for a DOOR_REFUSALS row."""
    sent = {"host": host, "headers": kwargs.get("headers")}
    if kwargs.get("host"):
        sent["host"] = None if kwargs["host"] == "own" else kwargs["host"]
    text = json.dumps(update)
    bodies = {
        "cut": text[:-2].encode(),
        "list": json.dumps([update]).encode(),
        "huge": json.dumps({**update, "padding": "x" * (1 << 20)}).encode(),
    }
    if kwargs.get("body"):
        sent["body"] = bodies[kwargs["body"]]
    return sent


def tap(api: BotApiServer, trader: int, message_id: int, action: str, analysis_id: str) -> str:
    """Press the card's button (by its data: the card may be mid-edit) and wait for the answer."""
    query = api.press_button(trader, message_id, callbacks.encode(action, analysis_id))
    return api.wait_for_callback_answer(query, timeout=20).text or ""


@pytest.mark.slow  # two bot processes, four analyses, one instance killed: about 20 s
def test_two_instances_share_the_updates_and_keep_every_card_current_when_one_dies(
    api, traders, service, runtime, tmp_path
):
    instances = Instances(api, traders, tmp_path).start()
    try:
        # Every listener is a door: without the secret, or with a wrong one, 403 and nothing done.
        rank = f"/rank symbols={','.join(DEMO_MARKETS[:60])} top=3"
        host = instances.host  # the webhook URL's, which the proxy forwards
        refused = [
            (instances.url(0), None),
            (instances.url(1), "wrong-secret"),
            (instances.proxy.url + "/telegram", None),
        ]
        for update_id, (url, secret) in enumerate(refused, start=900_000_001):
            assert post_update(url, rank_update(update_id, traders[0], rank), secret, host=host) == 403
        # A page on another origin is not let in: its preflight gets no CORS grant.
        status, headers = preflight(instances.url(0))
        assert status >= 400 and not any(h.lower().startswith("access-control-allow") for h in headers)
        # With the secret but anything else wrong: the refusal, in one line, and nothing done.
        for update_id, (kwargs, status, says) in enumerate(DOOR_REFUSALS.values(), start=900_000_011):
            update = rank_update(update_id, traders[0], rank)
            answer = post(instances.url(update_id % 2), update, SECRET, **door_request(kwargs, update, host))
            assert answer[0] == status and says in answer[1] and answer[1].count("\n") == 1, (kwargs, answer)
        # With the secret, the same kind of update is handled (the positive marker) ...
        assert (
            post_update(instances.url(1), rank_update(900_000_004, traders[0], rank), SECRET, host=host)
            == 200
        )
        wait_for_card(api, traders[0], timeout=30)
        # ... and the refused ones left no trace: not in the update ledger, no second card, no
        # other message to the trader.
        assert [
            runtime.redis.exists(runtime.keys.update(api.bot_id, 900_000_000 + n)) for n in (1, 2, 3, 4)
        ] == [0, 0, 0, 1]
        assert not any(
            runtime.redis.exists(runtime.keys.update(api.bot_id, 900_000_011 + n))
            for n in range(len(DOOR_REFUSALS))
        )
        assert len(api.messages(traders[0], from_bot=True)) == 1
        assert api.webhook_url == instances.proxy.url + "/telegram"

        # The other three start theirs through Telegram (the sandbox), which posts to the proxy.
        for trader in traders[1:]:
            api.send_message(trader, f"/rank symbols={','.join(DEMO_MARKETS[:60])} top=3")
        cards = {trader: wait_for_card(api, trader, timeout=30) for trader in traders}
        ids = {trader: analysis_id_of(card) for trader, card in cards.items()}

        answered, held = [], ""
        for round_ in range(TAP_ROUNDS):
            if round_ == TAP_ROUNDS // 2:
                # Mid-run, an instance is SIGKILLed while it handles a Pause (its answer held by
                # the Bot API server): its pending events and the proxy's half go to the other.
                # Telegram delivers the unconfirmed tap again; it is not run twice (the ledger),
                # and the pause it applied shows on the card, kept current by the other.
                trader = traders[0]
                held, dead = kill_while_handling_a_tap(api, instances, trader, cards[trader], ids)
                survivor = 1 - dead
                update_id = api.callback_queries[held].update_id
                wait_until(lambda: (update_id, 200) in api.webhook_posts, message="the tap delivered again")
                wait_for_status(api, trader, cards[trader].message_id, "Paused", timeout=30)
                assert f"update {update_id} was already handled; skipped" in instances.log(survivor)
                assert tap(api, trader, cards[trader].message_id, "resume", ids[trader])
            for trader in traders:
                for action in ("refresh", "pause", "resume"):
                    answered.append(tap(api, trader, cards[trader].message_id, action, ids[trader]))
        assert len(answered) == TAP_ROUNDS * 3 * len(traders)

        for trader in traders:
            card = wait_for_status(api, trader, cards[trader].message_id, "Completed", timeout=90)
            gist = service.get(ids[trader], Actor(str(trader)))
            assert gist.status == Status.COMPLETED
            assert all(f"{m.rank}. {m.symbol}" in card.text for m in gist.result), card.text
            # One card per analysis; no two edits of it in flight together; none repeated.
            assert len([m for m in api.messages(trader, from_bot=True) if status_of(m)]) == 1
            assert overlapping_edits(api, card) == []
            assert repeated_edits(api, card) == 0
            assert_history_is_one_clean_chain(runtime.store.history(gist.id), gist.seq)
        # Both instances took updates; every tap got one answer (the ledger and PTB), none twice;
        # the held Pause's answer died with its instance: that tap alone was never answered.
        assert all(instances.proxy.forwarded[backend] > 0 for backend in instances.proxy.backends)
        calls = [(c.params.get("callback_query_id"), c.answered) for c in api.calls_of("answerCallbackQuery")]
        once = [len([q for q, at in calls if q == query and at]) for query in api.callback_answers]
        assert set(once) == {1}
        assert held not in api.callback_answers
        assert [answered for query, answered in calls if query == held] == [None]
        group = f"bot:{api.bot_id}"
        wait_until(
            lambda: runtime.redis.xpending(runtime.keys.events(), group)["pending"] == 0,
            timeout=20,
            message="every event acknowledged, the dead instance's too",
        )
    finally:
        instances.stop()
    for index in range(2):
        log = instances.log(index)
        assert "Traceback" not in log and api.token not in log and SECRET not in log, log[-3000:]
        assert "wrong-secret" not in log and "webhook: refused" in log, log[-3000:]
    # The live instance stopped cleanly on SIGTERM: requests answered, services closed, exit 0.
    log = instances.log(survivor)
    assert "Application is stopping" in log and "bot stopped" in log, log[-3000:]
    process = instances.processes[survivor]
    assert process is not None and process.returncode == 0


def kill_while_handling_a_tap(
    api: BotApiServer, instances: Instances, trader: int, card, ids: dict[int, str]
) -> tuple[str, int]:
    """Tap Pause with the Bot API server holding the bot's answer, SIGKILL the instance that is
    handling the tap (the one whose request the proxy has not answered: the door answers only
    after the handlers); the tap's query id and the killed instance's index."""
    api.delay("answerCallbackQuery", 120)  # held until the killed instance's connection drops
    query = api.press_button(trader, card.message_id, callbacks.encode("pause", ids[trader]))
    wait_until(
        lambda: any(c.params.get("callback_query_id") == query for c in api.calls_of("answerCallbackQuery")),
        timeout=20,
        message="the tap's answer reached the Bot API server",
    )
    backend = instances.proxy.in_flight.get(api.callback_queries[query].update_id)
    assert backend is not None, instances.proxy.in_flight  # unanswered while its answer is held
    handling = instances.proxy.backends.index(backend)
    instances.kill(handling)
    return query, handling


def test_events_a_dead_instance_read_but_never_acknowledged_are_taken_over_after_the_idle_time(redis_url):
    """The consumer-group half of "a dead instance leaves its cards to the others": its
    unacknowledged entries go to a live consumer once idle for EVENTS_CLAIM_IDLE_S, not before."""
    import asyncio
    import uuid

    import redis.asyncio as aioredis

    from analysis.db.keys import Keys
    from analysis.engine.events import EventReader

    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        keys = Keys(prefix=f"claim-{uuid.uuid4().hex[:8]}:")
        dead = EventReader(client, keys, group="bot:1", consumer="instance-0", block_ms=50)
        live = EventReader(client, keys, group="bot:1", consumer="instance-1", block_ms=50, claim_idle_ms=400)
        try:
            await dead.ensure_group()
            entry = await client.xadd(
                keys.events(), {"id": "a1", "kind": "step", "status": "RUNNING", "seq": "3"}
            )
            read, _ = await dead.read()
            assert [e.entry_id for e in read] == [entry]  # read, then the instance dies: never acked
            soon, _ = await live.read()
            assert soon == []  # not idle long enough: the first instance may still be on it
            await asyncio.sleep(0.45)
            taken, _ = await live.read()
            assert [(e.entry_id, e.analysis_id, e.seq) for e in taken] == [(entry, "a1", 3)]
            await live.ack([entry])
            assert await live.pending_count() == 0
        finally:
            await client.delete(keys.events())
            await client.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    "env, says",
    [
        (
            {"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/telegram"},
            "bad setting: TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET (every request is checked)",
        ),
        (
            {"TELEGRAM_WEBHOOK_URL": "bot.example.com", "TELEGRAM_WEBHOOK_SECRET": "abc"},
            "bad setting TELEGRAM_WEBHOOK_URL=bot.example.com: must be an http(s) URL",
        ),
        (
            {"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/t", "TELEGRAM_WEBHOOK_SECRET": "has space"},
            "bad setting TELEGRAM_WEBHOOK_SECRET: must be 1-256 characters of A-Z, a-z, 0-9, _ and -",
        ),
        ({"TELEGRAM_WEBHOOK_PORT": "70000"}, "bad setting TELEGRAM_WEBHOOK_PORT=70000: Input should be less"),
        (
            {"TELEGRAM_WEBHOOK_URL": "https://bot.example.com:99999/t", "TELEGRAM_WEBHOOK_SECRET": "abc"},
            "bad setting TELEGRAM_WEBHOOK_URL=https://bot.example.com:99999/t: its port must be a number",
        ),
    ],
)
def test_a_bad_webhook_setting_is_one_line_naming_it_and_never_showing_the_secret(monkeypatch, env, says):
    from pydantic import ValidationError

    from analysis.settings import Settings, settings_problem

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    problem = settings_problem(raised.value)
    assert problem.startswith(says) and "\n" not in problem and "has space" not in problem, problem


def test_without_a_webhook_url_the_bot_long_polls_as_one_consumer(monkeypatch):
    from analysis.settings import Settings
    from bot.services import consumer_name

    monkeypatch.delenv("TELEGRAM_WEBHOOK_URL", raising=False)
    assert Settings().telegram_webhook_url is None and consumer_name(Settings()) == "notifier"
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", "https://bot.example.com/telegram")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "abc")
    on_webhook = consumer_name(Settings())
    assert on_webhook != "notifier" and on_webhook.endswith(f"-{os.getpid()}")
