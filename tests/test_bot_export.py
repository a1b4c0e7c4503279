"""The /schedule export flow (#24, item 3) in the real bot against the local Bot API server, with
the real listener: the token the chat shows gets the schedule's top K, and nothing once revoked;
another trader cannot export or revoke it; a group never sees a token; refusals write nothing."""

import json
import random
import re
import uuid

from analysis.schedules.service import ScheduleService
from analysis.schedules.store import ScheduleStore
from analysis.service import AnalysisService
from tasks.schedule_beat import default_registrar
from tests.test_bot import RunningBot, api, ask, bot_settings, logged_errors, people  # noqa: F401 (the bot tests' fixtures, shared)
from tests.test_bot_schedules import state
from tests.test_export import get, listener_port  # noqa: F401 (the listener, shared)


def reply_with(api, chat_id: int, mark: int, words: str) -> str:
    call = api.wait_for_call(
        "sendMessage",
        lambda c: c.params.get("chat_id") == chat_id and words in c.params.get("text", ""),
        since=mark,
        timeout=10,
    )
    return call.result["text"]


def test_schedule_export_gives_a_url_and_a_token_that_serve_the_top_k(
    api, people, runtime, queue, factory, listener_port
):  # noqa: F811
    with RunningBot(api, bot_settings(api, people, export_port=listener_port)) as bot:
        mark = api.mark()
        api.send_message(people.trader, "/schedule 4h markets=5 top=2 export=freqtrade")
        shown = reply_with(api, people.trader, mark, "Token (shown this once")
        schedule_id = re.search(r"Export of schedule (\w{8}) for freqtrade", shown)[1]
        url = re.search(r"URL: (\S+)", shown)[1]
        token = re.search(r"keep it secret\): (\S+)", shown)[1]
        snippet = json.loads(shown[shown.index("{") : shown.rindex("}") + 1])
        assert snippet["pairlist_url"] == url and snippet["bearer_token"] == token
        assert (snippet["method"], snippet["refresh_period"], snippet["number_assets"]) == (
            "RemotePairList",
            14400,
            2,
        )
        path = url.split(str(listener_port), 1)[1]
        assert get(listener_port, path, token)[0] == 503  # authorized; no run has completed yet
        # One run of the schedule (beat does not run here: fired and run in this process).
        settings = bot.application.bot_data["services"].settings
        fires = ScheduleService(
            ScheduleStore(runtime.redis, runtime.keys),
            AnalysisService(runtime.store, queue),
            factory,
            default_registrar(),
            settings,
        )
        run = fires.fire(schedule_id, fire_id=uuid.uuid4().hex).analysis_id
        queue.drain(runtime)
        status, _, body = get(listener_port, path, token)
        assert status == 200 and json.loads(body) == {
            "pairs": [m.symbol for m in runtime.store.load(run).result],
            "refresh_period": 14400,
        }
        # Another trader can neither take a token for it nor revoke it.
        assert "belongs to someone else" in ask(api, people.other, f"/schedule export {schedule_id}")
        assert "belongs to someone else" in ask(api, people.other, f"/schedule export {schedule_id} off")
        assert get(listener_port, path, token)[0] == 200
        # A new token replaces the old; off revokes it.
        again = ask(api, people.trader, f"/schedule export {schedule_id}")
        fresh = re.search(r"keep it secret\): (\S+)", again)[1]
        assert get(listener_port, path, token)[0] == 401 and get(listener_port, path, fresh)[0] == 200
        assert "is off" in ask(api, people.trader, f"/schedule export {schedule_id} off")
        assert get(listener_port, path, fresh)[0] == 401


def test_bad_exports_are_refused_and_a_group_never_sees_a_token(api, people, runtime, listener_port):  # noqa: F811
    prefix = f"mre{random.randrange(10**6)}:"
    group = -random.randrange(10**5, 10**6)
    with RunningBot(api, bot_settings(api, people, export_port=listener_port, key_prefix=prefix)):
        made = re.search(r"Scheduled (\w{8})", ask(api, people.trader, "/schedule 4h markets=5 top=2"))[1]
        before = state(runtime, prefix)
        cases = {
            "/schedule export": "use /schedule export <id>",
            f"/schedule export {made} csv": "export must be freqtrade or freqtrade-futures, not 'csv'",
            f"/schedule export {made} freqtrade extra": "use /schedule export <id>",
            "/schedule export zzzzzzzz": "no schedule 'zzzzzzzz'",
            "/schedule export ../../etc": "schedule ids look like",
            "/schedule 4h markets=5 export=excel": "export must be freqtrade or freqtrade-futures",
            "/schedule 4h markets=5 export=freqtrade export=freqtrade": "export is given twice",
        }
        for command, expected in cases.items():
            assert expected in ask(api, people.trader, command), command
        for command in (f"/schedule export {made}", "/schedule 4h markets=5 export=freqtrade"):
            mark = api.mark()
            api.send_message(people.trader, command, chat_id=group)
            answer = api.wait_for_call(
                "sendMessage", lambda c: c.params.get("chat_id") == group, since=mark, timeout=10
            ).result["text"]
            assert "only in a private chat" in answer and "Token" not in answer
        assert state(runtime, prefix) == before

    def without_events(snapshot: dict) -> dict:  # a second bot's consumer touches the stream's group
        return {k: v for k, v in snapshot.items() if k != f"{prefix}events".encode()}

    with RunningBot(api, bot_settings(api, people, export_port=None, key_prefix=prefix)):
        assert "the export listener is off" in ask(api, people.trader, f"/schedule export {made}")
        assert without_events(state(runtime, prefix)) == without_events(before)
