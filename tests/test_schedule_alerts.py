"""Alerts that do not flicker (#24, item 2): a notify=changes schedule announces a market entering
its top K only within K, leaving only beyond K + SCHEDULE_HYSTERESIS, and not again within
SCHEDULE_ALERT_COOLDOWN_RUNS runs; one card per run. Rankings are planted into real runs' gists
over the real Redis, and the bot's own decision (ScheduledCards.destination) is what is checked."""

import json
import uuid

import pytest

from analysis.schedules.alerts import announcements
from analysis.schedules.changes import run_changes
from analysis.schedules.service import ScheduleService
from analysis.schedules.store import ScheduleStore
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings
from bot.schedule_cards import ScheduledCards
from bot.views import card_text
from tasks.schedule_beat import default_registrar


def ranks(*symbols: str) -> dict[str, int]:
    return {symbol: rank for rank, symbol in enumerate(symbols, 1)}


def test_a_market_wobbling_in_the_band_is_announced_once():
    # K = 2, b = 2: X enters at rank 2, then wobbles between 2 and 3 (never beyond 4).
    runs = [
        ranks("A", "B", "C", "D", "X"),
        ranks("A", "X", "B", "C", "D"),
        ranks("A", "B", "X", "C", "D"),
        ranks("A", "X", "B", "C", "D"),
        ranks("A", "B", "X", "C", "D"),
    ]
    said = [announcements(runs[: i + 1], k=2, band=2, cooldown=3) for i in range(1, len(runs))]
    # B, pushed to rank 3, is inside the band: it has not left.
    assert said[0] == {"entered": ["X"], "left": []}
    assert [s["entered"] for s in said].count(["X"]) == 1
    assert all("X" not in s["left"] for s in said)


def test_leaving_needs_the_band_and_the_cooldown_holds_a_flip_back():
    k, band = 2, 1
    # Y drops to rank 3 (inside the band): nothing; to rank 4 (beyond K + b): left.
    assert announcements([ranks("Y", "A", "B", "C"), ranks("A", "B", "Y", "C")], k, band, 3) == {
        "entered": ["B"],
        "left": [],
    }
    assert announcements([ranks("Y", "A", "B", "C"), ranks("A", "B", "C", "Y")], k, band, 3)["left"] == ["Y"]
    # Z jumps in and out every run: announced entering once; the exits and re-entries inside the
    # cooldown of 3 runs say nothing; still out when the cooldown ends: announced as left then.
    out, inside = ranks("A", "B", "C", "Z"), ranks("Z", "A", "B", "C")
    runs = [out, inside, out, inside, out, out, out]
    said = [announcements(runs[: i + 1], k, band, cooldown=3) for i in range(1, len(runs))]
    assert [s for s in said if s["entered"] or s["left"]] == [
        {"entered": ["Z"], "left": []},
        {"entered": [], "left": ["Z"]},
    ]
    assert said.index({"entered": [], "left": ["Z"]}) == 4  # run 5: 4 runs after the entry
    # Without a cooldown every crossing is said.
    assert (
        sum(
            "Z" in s["entered"]
            for s in (announcements(runs[: i + 1], k, band, 0) for i in range(1, len(runs)))
        )
        == 2
    )


# --- the bot's decision over real runs ----------------------------------------------------------
@pytest.fixture
def schedules(runtime, queue, factory):
    settings = Settings(schedule_min_interval_s=1, allowed_user_ids=[], admin_user_ids=[])
    return ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys),
        AnalysisService(runtime.store, queue),
        factory,
        default_registrar(),
        settings,
    )


def plant(runtime, analysis_id: str, order: list[str], k: int) -> None:
    """Make this completed run's ranking `order` (its top K as the result, every market scored)."""
    key = runtime.keys.gist(analysis_id)
    state = json.loads(runtime.redis.hget(key, "state"))
    state["scores"] = {symbol: [float(len(order) - i)] for i, symbol in enumerate(order)}
    result = [
        {"rank": i + 1, "symbol": s, "score": float(len(order) - i), "indicators": {}}
        for i, s in enumerate(order[:k])
    ]
    runtime.redis.hset(key, mapping={"state": json.dumps(state), "result": json.dumps(result)})


def test_notify_changes_posts_a_market_oscillating_around_k_once(schedules, runtime, queue):
    assert runtime.settings.schedule_hysteresis == 2  # the default band
    owner = Actor(str(uuid.uuid4().int % 10**9))
    made = schedules.add("1s", {"markets": 6, "top_k": 2}, owner, chat_id=7, notify="changes")
    cards = ScheduledCards(schedules)
    posted, announced, cards_of = [], [], []
    # X's rank run after run: out (5), in (2), then around K: 3, 2, 3, 2, 3, 1, 3.
    x_ranks = [5, 2, 3, 2, 3, 2, 3, 1, 3]
    for run, x_rank in enumerate(x_ranks):
        fired = schedules.fire(made.id, fire_id=f"f{run}")
        assert fired.code == "started"
        queue.drain(runtime)
        markets = runtime.store.load(fired.analysis_id).state["markets"]
        others = [m for m in markets if m != markets[0]]
        order = others[: x_rank - 1] + [markets[0]] + others[x_rank - 1 :]
        plant(runtime, fired.analysis_id, order, k=2)
        if cards.destination(fired.analysis_id) == 7:
            posted.append(run)
            cards_of.append(fired.analysis_id)
            document = schedules.analyses.status_document(fired.analysis_id, owner)
            announced.append(document["changes"]["alerts"])
    x = runtime.store.load(fired.analysis_id).state["markets"][0]
    # The first run (the baseline) and the run where X came in; X's wobble posts nothing more.
    assert posted == [0, 1]
    assert announced[1]["entered"] == [x]
    # The posted card says it in words (one message for the run, whatever entered or left).
    entered_run = runtime.store.load(cards_of[1])
    assert f"Entered the top: {x}" in card_text(entered_run, run_changes(runtime.store, entered_run))
    assert sum(x in a["entered"] + a["left"] for a in announced) == 1
