"""The track record in the chat, through the real bot against the sandbox Bot API server and a
real worker: the completed card's line, /track's table and chart, refusals."""

import uuid

import pytest

from analysis.track.record_store import RecordStore
from tests.helpers import redis_snapshot
from tests.test_bot import (
    RunningBot,
    api,
    ask,
    bot_settings,
    logged_errors,
    people,  # noqa: F401
    wait_for_card,
    wait_for_status,
)
from tests.track_fixtures import MARKETS, forward_return, seed_scored_records, series, write_folder

pytestmark = pytest.mark.usefixtures("worker")


def test_the_card_and_track_show_the_track_record(api, people, logged_errors, runtime, tmp_path):
    name = f"seed{uuid.uuid4().hex[:6]}"
    source = write_folder(tmp_path / name, {s: series(s) for s in MARKETS})
    records = RecordStore(runtime.redis, runtime.keys, retention_days=180)
    seed_scored_records(
        records, source, n=35, every_bars=24, rank_by=lambda f, row: forward_return(f, row, 24)
    )
    with RunningBot(api, bot_settings(api, people, market_data=source)):
        api.send_message(people.trader, f"/rank symbols={','.join(MARKETS)} top=3")
        card = wait_for_card(api, people.trader)
        card = wait_for_status(api, people.trader, card.message_id, "Completed", timeout=60)
        line = api.wait_for(
            lambda: next(
                (
                    ln
                    for ln in (api.message(people.trader, card.message_id).text or "").splitlines()
                    if ln.startswith("Track record")
                ),
                None,
            ),
            timeout=15,
        )
        assert line.startswith(
            "Track record (score · 1h · 24h ahead, 35 picks): top 3 beat the universe by +"
        )

        mark = api.mark()
        reply = ask(api, people.trader, "/track score 1h")
        assert f"score · 1h · csv {name}: 36 picks, 35 scored, top 3" in reply
        for row in ("IC", "top-K excess", "hit rate", "n (indep.)", "volume", "momentum", "random K"):
            assert f"\n{row}" in reply or f"\n  {row}" in reply, row
        photo = api.wait_for(
            lambda: next(
                (
                    m
                    for m in api.messages(people.trader, from_bot=True)
                    if m.photo and m.message_id > card.message_id
                ),
                None,
            )
        )
        assert photo.photo.is_png and photo.photo.width > 300
        assert photo.caption.startswith(f"Track record score · 1h · csv {name}")
        assert api.calls_of("sendPhoto", since=mark)

        assert ask(api, people.trader, "/track banana").startswith(
            "Sorry — 'banana' is neither a strategy (score, llm, score-exit, llm-exit) nor a timeframe"
        )
        before = redis_snapshot(runtime.redis)
        assert "private" in ask(api, people.stranger, "/track")
        after = redis_snapshot(runtime.redis)
        track_keys = {k for k in set(before) | set(after) if b"track" in k}
        assert {k: before.get(k) for k in track_keys} == {k: after.get(k) for k in track_keys}
    assert logged_errors == []
