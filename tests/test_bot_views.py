"""The bot's pure parts: callback data, argument parsing, views, keyboards and the chart."""

import json
import os
import subprocess
import sys

import pytest

from analysis.errors import InvalidConfig, NotAllowed, NotFound
from analysis.models import ActionResult, Gist, RankingConfig, Status
from analysis.settings import Settings
from bot import callbacks, views
from bot.app import api_url, file_url
from bot.chart import ranking_chart_png
from bot.parsing import UsageError, analysis_id_arg, command_text, parse_exit_args, parse_rank_args
from bot.services import Access
from tests.servers import ROOT

ID = "k3f9a2xq7m"


def gist(
    status: str = "RUNNING",
    *,
    result: list | None = None,
    state: dict | None = None,
    demo: bool = True,
    reason: str = "",
    note: str = "",
    seq: int = 4,
    progress: float = 0.5,
    confidence: float = 0.0,
    refine_gen: int = 0,
    kind: str = "rank",
    spend: dict | None = None,
) -> Gist:
    config = RankingConfig(
        kind=kind,
        markets=["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"],
        timeframe="1h",
        top_k=3,
        target_confidence=0.8,
    )
    return Gist.from_hash(
        {
            "id": ID,
            "owner": "42",
            "status": status,
            "reason": reason,
            "seq": str(seq),
            "progress": str(progress),
            "confidence": str(confidence),
            "target": "0.8",
            "config": config.model_dump_json(),
            "state": json.dumps(state or {}),
            "result": json.dumps(result or []),
            "note": note,
            "version": "7",
            "refine_gen": str(refine_gen),
            "demo": "1" if demo else "0",
            "created_at": "0",
            "updated_at": "0",
            **{f"spend:{name}": str(n) for name, n in (spend or {}).items()},
        }
    )


RESULT = [
    {"rank": 1, "symbol": "BTC/USDT", "score": 0.71},
    {"rank": 2, "symbol": "ETH/USDT", "score": 0.2},
    {"rank": 3, "symbol": "SOL/USDT", "score": -0.05},
]


# --- callback data ----------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["pause", "resume", "cancel", "chart", "refresh"])
def test_callback_data_round_trips(action):
    data = callbacks.encode(action, ID)
    assert data == f"v1:{action}:{ID}" and len(data.encode()) <= 64
    assert callbacks.parse(data) == callbacks.ButtonPress(action, ID)


def test_refine_carries_its_generation():
    assert callbacks.parse(callbacks.encode("refine", ID, 12)) == callbacks.ButtonPress("refine", ID, 12)
    with pytest.raises(ValueError):
        callbacks.encode("refine", ID)
    with pytest.raises(ValueError):
        callbacks.encode("pause", ID, 1)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "v1",
        "v1:pause",
        f"v1:pause:{ID}:",
        f"v1:pause:{ID}:1",
        f"v2:pause:{ID}",
        f"V1:pause:{ID}",
        f"v1:Pause:{ID}",
        f"v1:delete:{ID}",
        f"v1:pause:{ID.upper()}",
        "v1:pause:k3f9a2",
        "v1:pause:k3f9a2xq1l",
        f"v1:refine:{ID}",
        f"v1:refine:{ID}:",
        f"v1:refine:{ID}:-1",
        f"v1:refine:{ID}:01",
        f"v1:refine:{ID}:1234567",
        f" v1:pause:{ID}",
        f"v1:pause:{ID}\n",
        "\x00\xff💥",
        "x" * 64,
        f"v1:pause:{ID}" + "\u200b",
    ],
)
def test_malformed_or_forged_callback_data_is_rejected(data):
    assert callbacks.parse(data) is None


# --- arguments --------------------------------------------------------------------------------
def test_rank_arguments():
    text = command_text(
        "/rank@marketrank_bot markets=20 timeframe=4H top=5 target=0.85 "
        'strategy=score prompt="steady uptrends, low vol"'
    )
    assert parse_rank_args(text) == {
        "markets": 20,
        "timeframe": "4h",
        "top_k": 5,
        "target": 0.85,
        "strategy": "score",
        "prompt": "steady uptrends, low vol",
    }
    assert parse_rank_args("symbols=btc,ETH/USDT, top=2") == {"symbols": ["btc", "ETH/USDT"], "top_k": 2}
    assert parse_rank_args("prompt=“smart quotes”") == {"prompt": "smart quotes"}
    assert parse_rank_args("") == {}


@pytest.mark.parametrize(
    "text, message",
    [
        ("top=x", "top must be a whole number, not 'x'"),
        ("markets=2.5", "markets must be a whole number"),
        ("markets=-3", "markets must be a whole number"),
        ("target=lots", "target must be a number like 0.85"),
        ("colour=red", "unknown option 'colour'"),
        ("top", "'top' is not key=value"),
        ("=3", "'=3' is not key=value"),
        ("top=1 top=2", "top is given twice"),
        ('prompt="open', "a quote is not closed"),
        ("symbols=,", "symbols needs a comma-separated list"),
    ],
)
def test_bad_rank_arguments_say_what_is_wrong(text, message):
    with pytest.raises(UsageError, match=message):
        parse_rank_args(text)


def test_exit_and_id_arguments():
    assert parse_exit_args("BTC/USDT,ETH/USDT  take profit soon") == (
        ["BTC/USDT", "ETH/USDT"],
        "take profit soon",
    )
    assert parse_exit_args("btc, eth ,sol then rest") == (["btc", "eth", "sol"], "then rest")
    assert parse_exit_args("BTC/USDT") == (["BTC/USDT"], "")
    assert parse_exit_args("") == ([], "")
    assert analysis_id_arg(" k3f9 ", "pause") == "k3f9"
    with pytest.raises(UsageError, match="give one analysis id, e.g. /pause"):
        analysis_id_arg("a b", "pause")


# --- the card ---------------------------------------------------------------------------------
def test_running_card_shows_progress_leaders_and_demo_label():
    text = views.card_text(gist(state={"leaders": ["SOL/USDT", "BTC/USDT"]}, seq=4, progress=0.5))
    assert text.splitlines()[0] == f"<b>Ranking {ID[:6]}</b> · Running"
    assert "4 markets · 1h · score · top 3" in text
    assert "DEMO DATA" in text
    assert "█████░░░░░ 50% · step 4" in text
    assert "Confidence 0.00 / target 0.80" in text
    assert "Leaders so far: SOL/USDT, BTC/USDT" in text


def test_completed_card_shows_the_ranking_and_the_note():
    text = views.card_text(
        gist("COMPLETED", result=RESULT, progress=1.0, confidence=0.86, note="target 0.90 not reached")
    )
    assert "Completed" in text and "██████████ 100%" in text
    assert "Confidence 0.86 / target 0.80 ✓" in text
    assert "1. BTC/USDT  +0.710\n2. ETH/USDT  +0.200\n3. SOL/USDT  -0.050" in text
    assert "Note: target 0.90 not reached" in text and "Leaders" not in text


def test_an_llm_card_shows_comparisons_and_cost_but_not_the_uncalibrated_chance_the_set_is_exact():
    state = {"log": [["BTC/USDT", "ETH/USDT", "BTC/USDT", "m"]] * 40, "estimate": {"p_exact": 0.231}}
    spend = {"calls": 43, "retries": 3, "prompt_tokens": 20000, "completion_tokens": 1500}
    text = views.card_text(gist(state=state, spend=spend))
    assert "40 comparisons · 43 LLM calls (3 retries) · 21,500 tokens" in text
    assert "exactly" not in text and "0.23" not in text  # p_exact reads high (docs/ranking.md)
    assert "comparisons" not in views.card_text(gist(state={"leaders": ["BTC/USDT"]}))


def test_card_escapes_text_and_omits_the_demo_label_for_real_data():
    text = views.card_text(gist("PAUSED", reason="<b>stuck</b> & co", demo=False))
    assert "Reason: &lt;b&gt;stuck&lt;/b&gt; &amp; co" in text and "DEMO" not in text


def test_long_rankings_are_cut_on_the_card():
    many = [{"rank": i, "symbol": f"C{i}/USDT", "score": 1 - i / 100} for i in range(1, 41)]
    text = views.card_text(gist("COMPLETED", result=many))
    assert "25. C25/USDT" in text and "26. C26/USDT" not in text and "… and 15 more" in text


@pytest.mark.parametrize(
    "status, labels",
    [
        ("PENDING", ["Pause", "Cancel", "Refresh"]),
        ("RUNNING", ["Pause", "Cancel", "Refresh"]),
        ("PAUSED", ["Resume", "Cancel", "Refresh"]),
        ("COMPLETED", ["Refine", "Chart", "Why", "Refresh"]),
        ("FAILED", ["Refresh"]),
        ("CANCELLED", ["Refresh"]),
    ],
)
def test_buttons_follow_the_state(status, labels):
    keyboard = views.card_keyboard(gist(status, refine_gen=3))
    buttons = [b for row in keyboard.inline_keyboard for b in row]
    assert [b.text for b in buttons] == labels
    for button in buttons:
        press = callbacks.parse(button.callback_data)
        assert press.analysis_id == ID and press.action == button.text.lower()
        assert press.generation == (3 if press.action == "refine" else None)


def test_status_words():
    assert [views.status_word(s) for s in Status] == [
        "Pending",
        "Running",
        "Paused",
        "Completed",
        "Failed",
        "Cancelled",
    ]


# --- replies ----------------------------------------------------------------------------------
def test_errors_read_as_sentences_and_buttons_for_gone_analyses_are_stale():
    assert (
        views.error_text(InvalidConfig("top 9 is larger than the 4 markets"))
        == "Sorry — top 9 is larger than the 4 markets."
    )
    assert views.error_text(InvalidConfig("bad <symbol>")) == "Sorry — bad &lt;symbol&gt;."
    assert views.button_refusal(NotFound("no analysis 'x'")) == views.STALE_BUTTON
    assert (
        views.button_refusal(NotAllowed("that analysis belongs to someone else"))
        == "Sorry — that analysis belongs to someone else"
    )
    assert len(views.button_refusal(NotAllowed("x" * 500))) <= 200
    assert views.action_answer(ActionResult("pause", ID, True, "Paused.")) == "Paused."


def test_lists():
    assert "no analyses yet" in views.analyses_list([])
    listing = views.analyses_list([gist(), gist("COMPLETED", result=RESULT, progress=1.0)])
    assert f"<code>{ID[:6]}</code> Running 50%" in listing and "Completed 100%" in listing
    assert views.stuck_list([]) == "Nothing is stuck."
    assert views.workers_text([]).startswith("⚠️ No worker answered")
    assert "w1@host" in views.workers_text(["w1@host"])
    failures = views.failures_text([{"id": ID, "seq": 3, "reason": "data <gone>", "at": 0}])
    assert ID in failures and "step 3: data &lt;gone&gt;" in failures


def test_help_shows_admin_commands_only_to_admins():
    assert "/force_resume" in views.help_text(True) and "/force_resume" not in views.help_text(False)


# --- chart, wiring, access --------------------------------------------------------------------
def test_chart_is_a_png_of_the_top_k():
    png = ranking_chart_png(gist("COMPLETED", result=RESULT, state={"p_in_top_k": {"BTC/USDT": 0.9}}))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    with pytest.raises(ValueError):
        ranking_chart_png(gist())


def test_an_llm_analysis_charts_each_market_s_posterior_chance_of_being_in_the_top_k():
    llm = gist("COMPLETED", result=RESULT, state={"log": [], "estimate": {"p_in_top_k": {"BTC/USDT": 0.97}}})
    assert llm.p_in_top_k == {"BTC/USDT": 0.97}  # what the chart's right panel draws
    assert ranking_chart_png(llm).startswith(b"\x89PNG")


def test_file_url_follows_the_api_base_url():
    assert (
        file_url(Settings(telegram_api_base_url="https://api.telegram.org/bot"))
        == "https://api.telegram.org/file/bot"
    )
    assert (
        file_url(Settings(telegram_api_base_url="http://127.0.0.1:8081/bot"))
        == "http://127.0.0.1:8081/file/bot"
    )
    assert file_url(Settings(telegram_api_file_url="http://files/x")) == "http://files/x"
    bare = Settings(telegram_api_base_url="http://127.0.0.1:8081/")
    assert (api_url(bare), file_url(bare)) == ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot")


def test_access():
    anyone = Access([], [7])
    assert anyone.may_trade(1) and anyone.is_admin(7) and not anyone.is_admin(1)
    private = Access([1, 2], [7])
    assert private.may_trade(1) and private.may_trade(7) and not private.may_trade(3)


def test_no_token_explains_botfather_and_exits_zero():
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": ""}
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "@BotFather" in done.stdout and "/newbot" in done.stdout and "worker" in done.stdout


def test_a_listwise_llm_card_counts_orders_not_comparisons():
    order = {
        "shown": ["ETH/USDT", "BTC/USDT", "SOL/USDT"],
        "ranking": ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
        "model": "m",
    }
    state = {"log": [order] * 7, "list_size": 3, "estimate": {"p_exact": 0.5}}
    text = views.card_text(gist(state=state, spend={"calls": 8, "retries": 1, "prompt_tokens": 9000}))
    assert "7 orders of 3 · 8 LLM calls (1 retries) · 9,000 tokens" in text and "exactly" not in text
