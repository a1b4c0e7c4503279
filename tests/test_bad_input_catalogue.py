"""A catalogue of bad inputs for the service (and its config factory) and for the `marketrank` CLI:
wrong types, huge and negative numbers, unknown ids, other users' ids, oversized prompts, unicode
and control characters, injection-looking strings. Each gets a clear one-line error and changes
nothing: every Redis key is compared before and after. (The bot's catalogue is in the bot tests.)

Each part has its own Redis database on the session server, so nothing else writes there.
"""

import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from analysis.config_factory import RankingConfigFactory
from analysis.engine.runtime import Runtime
from analysis.engine.step_runner import run_step
from analysis.errors import AnalysisError, InvalidConfig, LimitReached, NotAllowed, NotFound
from analysis.markets.registry import provider_from_spec
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings
from tests.helpers import redis_snapshot

SERVICE_DB, CLI_DB, SCRATCH_DB, NOTICE_DB = 3, 4, 5, 6

ALICE, BOB, CAROL = Actor("alice"), Actor("bob"), Actor("carol")
BAD_IDS = {
    "none": None,
    "int": 123,
    "float": 4.5,
    "nan": math.nan,
    "list": ["abcdefghij"],
    "dict": {"id": "abcdefghij"},
    "bytes": b"abcdefghij",
    "empty": "",
    "blank": "   ",
    "unknown": "zzzzzzzzzz",
    "too short": "abc",
    "too long": "a" * 10_000,
    "path": "../../etc/passwd",
    "glob": "*",
    "key name": "mr:analysis:*",
    "redis protocol": "abcd\r\nFLUSHALL\r\n",
    "nul": "abcd\x00",
    "ansi escape": "abcd\x1b[2J",
    "fullwidth": "ａｂｃｄｅｆｇｈｉｊ",
    "outside the alphabet": "l0l0l0l0l0",
    "sql": "abcd' OR '1'='1",
    "emoji": "🚀🚀🚀🚀",
}
ACTIONS = ("get", "status_document", "pause", "resume", "refine", "cancel", "explain")


class RecordingDispatcher:
    def __init__(self):
        self.queue = []

    def enqueue_step(self, analysis_id, chain, seq):
        self.queue.append((analysis_id, chain, seq))


def redis_url_db(redis_url: str, db: int) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{db}"


def build_world(redis_url: str, db: int) -> dict:
    """Alice has a running and a completed analysis, Bob a running one, Carol is at her limit."""
    settings = Settings(redis_url=redis_url_db(redis_url, db), market_data="demo")
    runtime = Runtime(settings)
    runtime.redis.flushdb()
    dispatcher = RecordingDispatcher()
    service = AnalysisService(runtime.store, dispatcher)
    factory = RankingConfigFactory(settings, provider_from_spec("demo"), llm_configured=False)
    config = factory.create_ranking_config(markets=4, top_k=2)
    running = service.start(config, ALICE)
    completed = service.start(config, ALICE)
    bobs = service.start(config, BOB)
    for _ in range(settings.max_active_per_user):
        service.start(config, CAROL)
    for analysis_id, chain, seq in list(dispatcher.queue):
        if analysis_id == completed.id:
            while run_step(runtime, analysis_id, chain, seq).decision == "continue":
                seq += 1
    dispatcher.queue.clear()
    return dict(
        runtime=runtime,
        service=service,
        factory=factory,
        config=config,
        dispatcher=dispatcher,
        running=running.id,
        completed=completed.id,
        bobs=bobs.id,
    )


@pytest.fixture(scope="module")
def world(redis_url):
    return build_world(redis_url, SERVICE_DB)


@pytest.fixture
def scratch_world(redis_url):
    """A world of its own, for known bugs that do change something."""
    return build_world(redis_url, SCRATCH_DB)


def assert_refused_and_nothing_changed(world, call, error=AnalysisError, match=None):
    """`call` raises `error` with a one-line printable message, and no key or queue changed."""
    before = redis_snapshot(world["runtime"].redis)
    with pytest.raises(error, match=match) as raised:
        call()
    message = str(raised.value)
    assert message and "\n" not in message and message.isprintable() and len(message) < 300
    assert redis_snapshot(world["runtime"].redis) == before
    assert world["dispatcher"].queue == []


# --- ids: wrong types, unknown, injection-looking, other users' ------------------------------
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("bad_id", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_a_bad_id_is_not_found_and_changes_nothing(world, action, bad_id):
    method = getattr(world["service"], action)
    assert_refused_and_nothing_changed(world, lambda: method(bad_id, ALICE), NotFound)


def test_force_resume_with_a_bad_id_is_refused(world):
    admin = Actor("admin", is_admin=True)
    for bad_id in BAD_IDS.values():
        assert_refused_and_nothing_changed(
            world, lambda: world["service"].force_resume(bad_id, admin), NotFound
        )


@pytest.mark.parametrize("action", ACTIONS)
def test_another_users_analysis_is_refused(world, action):
    method = getattr(world["service"], action)
    assert_refused_and_nothing_changed(
        world, lambda: method(world["bobs"], ALICE), NotAllowed, "belongs to someone else"
    )
    # A short id only ever resolves among the caller's own analyses.
    assert_refused_and_nothing_changed(world, lambda: method(world["bobs"][:5], ALICE), NotFound)


def test_force_resume_is_refused_to_users_even_on_their_own_analysis(world):
    for analysis_id in (world["running"], world["bobs"]):
        assert_refused_and_nothing_changed(
            world, lambda: world["service"].force_resume(analysis_id, ALICE), NotAllowed
        )


def test_the_per_user_limit_refuses_a_new_analysis_and_writes_nothing(world):
    assert_refused_and_nothing_changed(
        world, lambda: world["service"].start(world["config"], CAROL), LimitReached, "the limit is 3"
    )


# --- refine generations (a button carries one; buttons can be forged) ---------------------------
@pytest.mark.parametrize("generation", [-1, 10**30, 2**63], ids=["negative", "huge", "int64"])
def test_a_forged_refine_generation_changes_nothing(world, generation):
    before = redis_snapshot(world["runtime"].redis)
    result = world["service"].refine(world["completed"], ALICE, generation=generation)
    assert not result.changed and result.message == "This refine was already applied."
    assert redis_snapshot(world["runtime"].redis) == before and world["dispatcher"].queue == []


@pytest.mark.parametrize("generation", ["0", True, 1.5, math.nan], ids=["str", "bool", "float", "nan"])
def test_a_refine_generation_of_the_wrong_type_is_refused(scratch_world, generation):
    world = scratch_world
    assert_refused_and_nothing_changed(
        world,
        lambda: world["service"].refine(world["completed"], ALICE, generation=generation),
        InvalidConfig,
    )


# --- explain: a symbol that is not in the ranking ---------------------------------------------
BAD_SYMBOLS = {
    "unknown": "NOPE/USDT",
    "empty": "",
    "int": 3,
    "list": ["BTC/USDT"],
    "huge": "A" * 10_000,
    "bidi": "BTC/USDT\u202e",
    "nul": "BTC\x00/USDT",
    "key name": "mr:analysis:*",
    "emoji": "🚀/USDT",
}


@pytest.mark.parametrize("symbol", BAD_SYMBOLS.values(), ids=BAD_SYMBOLS.keys())
def test_explain_of_a_symbol_not_in_the_ranking_is_refused_and_changes_nothing(world, symbol):
    assert_refused_and_nothing_changed(
        world, lambda: world["service"].explain(world["completed"], ALICE, symbol), NotFound
    )


# --- configs: the factory validates everything a front passes -----------------------------------
def too_many_symbols():
    return [f"S{i}/USDT" for i in range(101)]


CONFIGS = {
    "markets str": dict(markets="10"),
    "markets float": dict(markets=10.5),
    "markets bool": dict(markets=True),
    "markets nan": dict(markets=math.nan),
    "markets negative": dict(markets=-3),
    "markets zero": dict(markets=0),
    "markets one": dict(markets=1),
    "markets huge": dict(markets=10**18),
    "markets beyond the data": dict(markets=99),
    "markets and symbols": dict(markets=5, symbols=["BTC/USDT", "ETH/USDT"]),
    "top str": dict(markets=5, top_k="3"),
    "top float": dict(markets=5, top_k=2.5),
    "top bool": dict(markets=5, top_k=True),
    "top zero": dict(markets=5, top_k=0),
    "top negative": dict(markets=5, top_k=-1),
    "top huge": dict(markets=5, top_k=10**30),
    "target str": dict(markets=5, target="0.9"),
    "target bool": dict(markets=5, target=True),
    "target above": dict(markets=5, target=1.5),
    "target negative": dict(markets=5, target=-0.1),
    "target nan": dict(markets=5, target=math.nan),
    "target inf": dict(markets=5, target=math.inf),
    "target huge": dict(markets=5, target=10**400),
    "timeframe unknown": dict(markets=5, timeframe="1y"),
    "timeframe empty": dict(markets=5, timeframe=""),
    "timeframe none": dict(markets=5, timeframe=None),
    "timeframe injection": dict(markets=5, timeframe="1h; FLUSHALL"),
    "timeframe control": dict(markets=5, timeframe="1h\x1b[2J"),
    "timeframe fullwidth": dict(markets=5, timeframe="１ｈ"),
    "strategy internal": dict(markets=5, strategy="noop"),
    "strategy unconfigured llm": dict(markets=5, strategy="llm"),
    "strategy none": dict(markets=5, strategy=None),
    "strategy list": dict(markets=5, strategy=["score"]),
    "strategy newline": dict(markets=5, strategy="score\n"),
    "prompt one too long": dict(markets=5, prompt="x" * 501),
    "prompt 10 MB": dict(markets=5, prompt="x" * 10_000_000),
    "prompt bell": dict(markets=5, prompt="buy \x07 now"),
    "prompt ansi": dict(markets=5, prompt="\x1b[2J\x1b[31mred"),
    "prompt nul": dict(markets=5, prompt="a\x00b"),
    "prompt del": dict(markets=5, prompt="a\x7fb"),
    "prompt bytes": dict(markets=5, prompt=b"bytes"),
    "prompt none": dict(markets=5, prompt=None),
    "prompt int": dict(markets=5, prompt=42),
    "symbols one": dict(symbols=["BTC/USDT"]),
    "symbols none given": dict(symbols=[]),
    "symbols duplicates": dict(symbols=["BTC/USDT", "btc-usdt"]),
    "symbols unknown": dict(symbols=["BTC/USDT", "NOPE/USDT"]),
    "symbols cyrillic lookalike": dict(symbols=["ВТС/USDT", "ETH/USDT"]),
    "symbols fullwidth": dict(symbols=["ＢＴＣ/USDT", "ETH/USDT"]),
    "symbols sql": dict(symbols=["BTC/USDT", "ETH/USDT'; DROP TABLE x;--"]),
    "symbols glob": dict(symbols=["BTC/USDT", "*"]),
    "symbols path": dict(symbols=["BTC/USDT", "../../etc/passwd"]),
    "symbols key name": dict(symbols=["BTC/USDT", "mr:analysis:*"]),
    "symbols redis protocol": dict(symbols=["BTC/USDT", "\r\nFLUSHALL\r\n"]),
    "symbols nul": dict(symbols=["BTC/USDT\x00", "ETH/USDT"]),
    "symbols a string": dict(symbols="BTC/USDT,ETH/USDT"),
    "symbols too many": dict(symbols=too_many_symbols()),
    "symbols huge list": dict(symbols=["BTC/USDT"] * 1_000_000 + ["X"]),
}
WRONG_TYPES = {
    "timeframe list": dict(markets=5, timeframe=["1h"]),
    "symbols int": dict(symbols=5),
    "symbols int element": dict(symbols=["BTC/USDT", 5]),
    "symbols none element": dict(symbols=["BTC/USDT", None]),
    "kind unknown": dict(markets=5, kind="hack"),
}


@pytest.mark.parametrize("arguments", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.slow
def test_a_bad_config_is_refused_with_a_clear_error(world, arguments):
    assert_refused_and_nothing_changed(
        world, lambda: world["factory"].create_ranking_config(**arguments), InvalidConfig
    )


@pytest.mark.parametrize("arguments", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_config_of_the_wrong_type_is_refused_with_a_clear_error(world, arguments):
    assert_refused_and_nothing_changed(
        world, lambda: world["factory"].create_ranking_config(**arguments), InvalidConfig
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda f: f.create_exit_config([]),
        lambda f: f.create_exit_config("BTC/USDT"),
        lambda f: f.create_exit_config(["BTC/USDT", "ETH/USDT"], "x" * 501),
        lambda f: f.create_entry_config(None),
        lambda f: f.create_entry_config("\x1b]0;title\x07"),
    ],
    ids=["exit nothing held", "exit a string", "exit long prompt", "entry no prompt", "entry osc escape"],
)
def test_bad_entry_and_exit_requests_are_refused(world, make):
    assert_refused_and_nothing_changed(world, lambda: make(world["factory"]), InvalidConfig)


def test_unicode_prompts_are_welcome_and_kept_exactly(world):
    prompt = "Кто сильнее? 強気 📈 — ÉTH → 10% (٣)"
    config = world["factory"].create_ranking_config(markets=5, prompt=prompt)
    assert config.prompt == prompt


def test_a_prompt_with_bidi_controls_is_refused(world):
    assert_refused_and_nothing_changed(
        world,
        lambda: world["factory"].create_ranking_config(markets=5, prompt="buy \u202eyub"),
        InvalidConfig,
    )


# --- the CLI, as a subprocess ---------------------------------------------------------------------
def cli_cases(ambiguous_prefix: str) -> dict[str, list[str]]:
    """The CLI's own layer (argument parsing, owners, ids, one-line errors) and a sample of each
    kind of config mistake; the service tests above go through every config check."""
    cases = {
        "no command": [],
        "unknown command": ["frobnicate"],
        "unknown flag": ["start", "--fast"],
        "markets not a number": ["start", "--markets", "abc"],
        "markets float": ["start", "--markets", "1.5"],
        "markets negative": ["start", "--markets", "-3"],
        "markets huge": ["start", "--markets", "9" * 30],
        "markets beyond int parsing": ["start", "--markets", "9" * 5000],
        "markets and symbols": ["start", "--markets", "5", "--symbols", "BTC/USDT,ETH/USDT"],
        "top negative": ["start", "--top", "-1"],
        "top huge": ["start", "--top", "9" * 30],
        "target nan": ["start", "--target", "nan"],
        "target overflow": ["start", "--target", "1e309"],
        "target text": ["start", "--target", "high"],
        "timeframe shell": ["start", "--timeframe", "1h; rm -rf /"],
        "timeframe ansi": ["start", "--timeframe", "1h\x1b[2J"],
        "strategy internal": ["start", "--strategy", "noop"],
        "strategy unconfigured llm": ["start", "--strategy", "llm"],
        "kind unknown": ["start", "--kind", "hack"],
        "exit without holdings": ["start", "--kind", "exit"],
        "prompt 100k": ["start", "--prompt", "x" * 100_000],
        "prompt ansi": ["start", "--prompt", "\x1b[31mred\x1b[0m"],
        "prompt invalid utf-8": ["start", "--prompt", os.fsdecode(b"\xff\xfe")],
        "entry prompt invalid utf-8": ["start", "--kind", "entry", "--prompt", os.fsdecode(b"buy \xc3")],
        "prompt zero width": ["start", "--prompt", "buy\u200bnow"],
        "prompt tag characters": ["start", "--kind", "entry", "--prompt", "hi\U000e0041\U000e0042"],
        "symbols invalid utf-8": ["start", "--symbols", os.fsdecode(b"BTC/USDT,\xff/USDT")],
        "symbols commas": ["start", "--symbols", ",,,"],
        "symbols cyrillic": ["start", "--symbols", "BTC/USDT,ВТС/USDT"],
        "symbols sql": ["start", "--symbols", "BTC/USDT,ETH/USDT'; DROP TABLE x;--"],
        "symbols redis protocol": ["start", "--symbols", "BTC/USDT,\r\nFLUSHALL\r\n"],
        "symbols too many": ["start", "--symbols", ",".join(too_many_symbols())],
        "owner empty": ["start", "--owner", ""],
        "owner newline": ["start", "--owner", "x\ny"],
        "owner glob": ["list", "--owner", "mr:*"],
        "owner fullwidth": ["start", "--owner", "ａｌｉｃｅ"],
        "markets timeframe": ["markets", "--timeframe", "1y"],
        "markets limit negative": ["markets", "--limit", "-5"],
        "markets limit zero": ["markets", "--limit", "0"],
        "pause without id": ["pause"],
        "status json unknown id": ["status", "--json", "zzzzzzzzzz"],
        "force-resume unknown id": ["force-resume", "zzzzzzzzzz"],
        "wait unknown id": ["wait", "zzzzzzzzzz"],
        "id ambiguous prefix": ["cancel", ambiguous_prefix],
    }
    for name, bad in (
        ("empty", ""),
        ("glob", "*"),
        ("path", "../../etc/passwd"),
        ("ansi", "abcd\x1b[2J"),
        ("long", "a" * 10_000),
        ("fullwidth", "ａｂｃｄｅｆｇｈｉｊ"),
        ("newline", "abcd\nrm"),
    ):
        cases[f"id {name}"] = [command_for(name), bad]
    cases.update(
        {  # marketrank backtest (issue 21): it reads no Redis and must write none
            "backtest llm": ["backtest", "--strategy", "llm"],
            "backtest horizons text": ["backtest", "--horizons", "a,b"],
            "backtest horizons huge": ["backtest", "--horizons", "9" * 30],
            "backtest every cron": ["backtest", "--every", "cron=0 * * * *"],
            "backtest every seconds": ["backtest", "--every", "30s"],
            "backtest from ansi": ["backtest", "--from", "\x1b[2J"],
            "backtest to year 99999": ["backtest", "--to", "99999-01-01"],
            "backtest top zero": ["backtest", "--top", "0"],
            "backtest markets huge": ["backtest", "--markets", "9" * 30],
            "backtest symbols cyrillic": ["backtest", "--symbols", "BTC/USDT,ВТС/USDT"],
            "backtest source missing": ["backtest", "--source", "csv:/nonexistent; rm -rf /"],
            "backtest timeframe absent": ["backtest", "--source", "demo", "--timeframe", "1y"],
        }
    )
    return cases


def command_for(name: str) -> str:
    """Spread the bad ids over the commands that take one."""
    commands = ("status", "pause", "resume", "refine", "cancel", "force-resume", "wait")
    return commands[sum(map(ord, name)) % len(commands)]


def run_marketrank(env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("marketrank")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]
    return subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, errors="replace", timeout=120
    )


def test_the_cli_refuses_bad_input_with_one_error_line_and_changes_nothing(redis_url, monkeypatch):
    """The CLI's commands called in this process (tests/cli_runner.py): its logic, not start-up."""
    from tests.cli_runner import marketrank

    url = redis_url_db(redis_url, CLI_DB)
    settings = Settings(redis_url=url, market_data="demo")
    runtime = Runtime(settings)
    runtime.redis.flushdb()
    service = AnalysisService(runtime.store, RecordingDispatcher())
    factory = RankingConfigFactory(settings, provider_from_spec("demo"), llm_configured=False)
    real = service.start(factory.create_ranking_config(markets=4, top_k=2), Actor("cli")).id
    # An id that shares the first four characters makes that prefix ambiguous.
    twin = real[:4] + ("zzzzzz" if real[4:] != "zzzzzz" else "yyyyyy")
    runtime.redis.zadd(runtime.keys.analyses(), {twin: 0})
    env = {"REDIS_URL": url, "MARKET_DATA": "demo", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    enqueued = RecordingDispatcher()  # where the CLI's steps would go: none may
    monkeypatch.setattr("wiring.CeleryDispatcher", lambda label="": enqueued)
    before = redis_snapshot(runtime.redis)
    cases = cli_cases(real[:4])
    results = {name: marketrank(*args, **env) for name, args in cases.items()}
    problems = []
    for name, done in results.items():
        lines = done.stderr.splitlines()
        if (
            done.returncode == 0
            or len(lines) != 1
            or not lines[0].startswith("error: ")
            or done.stdout
            or not lines[0].isprintable()
        ):
            problems.append(
                f"{name}: exit {done.returncode}, stdout {done.stdout[:200]!r}, stderr {done.stderr[:300]!r}"
            )
    assert not problems, "\n".join(problems)
    assert redis_snapshot(runtime.redis) == before
    assert enqueued.queue == []


# --- issue 12: holes a review found -----------------------------------------------------------
INVISIBLE = {
    "zero width space": "buy\u200bnow",
    "zero width non-joiner": "buy\u200cnow",
    "zero width joiner between letters": "buy\u200dnow",
    "word joiner": "buy\u2060now",
    "byte order mark": "\ufeffbuy now",
    "soft hyphen": "buy\u00adnow",
    "tag characters": "buy now" + "".join(chr(0xE0000 + ord(c)) for c in "sell everything"),
    "cancel tag": "buy\U000e007fnow",
    "mongolian vowel separator": "buy\u180enow",
    "invisible separator": "buy\u2063now",
}


@pytest.mark.parametrize("prompt", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_prompt_with_invisible_characters_is_refused(world, prompt):
    for make in (
        lambda f: f.create_ranking_config(markets=5, prompt=prompt),
        lambda f: f.create_entry_config(prompt),
        lambda f: f.create_exit_config(["BTC/USDT", "ETH/USDT"], prompt),
    ):
        assert_refused_and_nothing_changed(world, lambda: make(world["factory"]), InvalidConfig, "invisible")


def test_emoji_joined_by_a_zero_width_joiner_are_welcome(world):
    prompt = "👨‍💻 picks, 🏳️‍🌈 friendly"
    assert world["factory"].create_ranking_config(markets=5, prompt=prompt).prompt == prompt


JOINED_WORDS = {
    "persian non-joiner": "می\u200cخواهم بازار صعودی",
    "persian plurals": "نامه\u200cها و کتاب\u200cهای خوب",
    "hindi joiner after virama": "क्\u200dष बाज़ार",
    "hindi non-joiner after virama": "क्\u200cष बाज़ार",
}


@pytest.mark.parametrize("prompt", JOINED_WORDS.values(), ids=JOINED_WORDS.keys())
def test_a_zero_width_non_joiner_or_joiner_inside_a_word_of_a_script_that_needs_it_is_welcome(world, prompt):
    for config in (
        world["factory"].create_ranking_config(markets=5, prompt=prompt),
        world["factory"].create_entry_config(prompt),
    ):
        assert prompt in config.prompt


HIDDEN_JOINERS = {
    "alone": "\u200c",
    "at the start": "\u200cمی خواهم",
    "at the end": "میخواهم\u200c",
    "in a run": "می\u200c\u200c\u200cخواهم",
    "before a space": "می\u200c خواهم",
    "between persian and latin": "می\u200cbuy",
    "between two scripts": "می\u200cक",
    "between persian digits": "۱\u200c۲",
}


@pytest.mark.parametrize("prompt", HIDDEN_JOINERS.values(), ids=HIDDEN_JOINERS.keys())
def test_a_non_joiner_outside_a_word_is_still_refused_with_the_same_message(world, prompt):
    assert_refused_and_nothing_changed(
        world,
        lambda: world["factory"].create_ranking_config(markets=5, prompt=prompt),
        InvalidConfig,
        r"^the prompt contains an invisible character \(U\+200C ZERO WIDTH "
        r"NON-JOINER\); send plain text$",
    )


@pytest.mark.parametrize("prompt", ["\udcff\udcfe", "buy \udc80 now"], ids=["only", "inside"])
def test_a_prompt_that_is_not_valid_utf8_is_refused(world, prompt):
    assert_refused_and_nothing_changed(
        world,
        lambda: world["factory"].create_ranking_config(markets=5, prompt=prompt),
        InvalidConfig,
        "not valid UTF-8",
    )


def test_the_prompt_limit_counts_what_the_trader_typed_not_the_template(world):
    factory, limit = world["factory"], world["factory"].settings.max_prompt_chars
    typed = "steady uptrend, " * (limit // 16) + "x" * (limit % 16)
    assert len(typed) == limit
    entry = factory.create_entry_config(typed)
    held = factory.create_exit_config(["BTC/USDT", "ETH/USDT"], typed)
    assert typed in entry.prompt and typed in held.prompt
    for make in (
        lambda f: f.create_entry_config(typed + "!"),
        lambda f: f.create_exit_config(["BTC/USDT", "ETH/USDT"], typed + "!"),
    ):
        assert_refused_and_nothing_changed(
            world,
            lambda: make(factory),
            InvalidConfig,
            f"the prompt is {limit + 1} characters; the limit is {limit}",
        )


def test_llm_without_a_prompt_asks_the_judge_a_sensible_default_question(world):
    from analysis.ranking.llm_judge import PairRequest, build_messages

    factory = RankingConfigFactory(world["factory"].settings, provider_from_spec("demo"), llm_configured=True)
    for blank in ("", "   "):
        config = factory.create_ranking_config(markets=5, timeframe="4h", strategy="llm", prompt=blank)
        assert config.prompt == "Which market has the stronger outlook over the next few 4h candles?"
        request = PairRequest(
            first="BTC/USDT", second="ETH/USDT", first_summary="a", second_summary="b", question=config.prompt
        )
        user = build_messages(request)[1]["content"]
        assert "Trader's question: Which market has the stronger outlook" in user
    asked = factory.create_ranking_config(markets=5, strategy="llm", prompt="calm uptrends")
    assert asked.prompt == "calm uptrends"


NO_JUDGE = "no LLM judge configured: ranked by indicators; your question was not used"


def test_entry_and_exit_without_a_judge_say_the_question_was_not_used(world):
    from bot import views

    factory = world["factory"]  # no LLM configured
    entry = factory.create_entry_config("strong momentum")
    held = factory.create_exit_config(["BTC/USDT", "ETH/USDT"], "taking profits")
    assert entry.strategy == held.strategy == "score"
    assert entry.notice == held.notice == NO_JUDGE
    gist = world["service"].start(entry, Actor("notice-reader"))
    world["dispatcher"].queue.clear()  # later refusals check that they enqueue nothing
    assert NO_JUDGE in views.card_text(gist)
    with_judge = RankingConfigFactory(factory.settings, provider_from_spec("demo"), llm_configured=True)
    judged = with_judge.create_entry_config("strong momentum")
    assert judged.strategy == "llm" and judged.notice == ""


@pytest.mark.slow
def test_the_cli_says_when_an_entry_question_is_not_used(redis_url):
    url = redis_url_db(redis_url, NOTICE_DB)
    runtime = Runtime(Settings(redis_url=url, market_data="demo"))
    runtime.redis.flushdb()
    env = {**os.environ, "REDIS_URL": url, "MARKET_DATA": "demo", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    done = run_marketrank(env, ["start", "--kind", "entry", "--markets", "5", "--prompt", "momentum"])
    assert done.returncode == 0, done.stderr
    analysis_id = done.stdout.strip()
    assert len(analysis_id) == 10
    assert done.stderr.strip() == f"note: {NO_JUDGE}"
    shown = run_marketrank(env, ["status", analysis_id])
    assert NO_JUDGE in shown.stdout


# --- who may launch work ---------------------------------------------------------------------
def test_the_production_celery_app_registers_no_benchmark_task():
    """Flower's API can launch any task the app registers (POST /api/task/async-apply/<name>)."""
    from tasks.celery_app import app

    app.loader.import_default_modules()
    bench = sorted(name for name in app.tasks if "bench" in name)
    assert bench == [], f"benchmark tasks reachable from Flower: {bench}"


# --- state that never heals ------------------------------------------------------------------------
def test_analyses_that_expired_no_longer_count_against_the_limit(scratch_world):
    world = scratch_world
    store, service, redis = world["runtime"].store, world["service"], world["runtime"].redis
    carols = store.ids_of_owner(CAROL.user_id)
    assert len(carols) == store.settings.max_active_per_user
    kept, *expired = carols
    for analysis_id in expired:  # their gists (and what hangs off them) expired
        redis.delete(store.keys.gist(analysis_id), store.keys.control(analysis_id))
    assert [g.id for g in service.list(CAROL)] == [kept]
    fresh = service.start(world["config"], CAROL)
    assert redis.smembers(store.keys.active(CAROL.user_id)) == {kept.encode(), fresh.id.encode()}
    # The one that still exists still counts: the limit holds.
    service.start(world["config"], CAROL)
    world["dispatcher"].queue.clear()
    assert_refused_and_nothing_changed(
        world, lambda: service.start(world["config"], CAROL), LimitReached, "the limit is 3"
    )


def test_pause_after_the_control_key_expired_writes_a_control_key_that_expires(scratch_world):
    world = scratch_world
    store, redis = world["runtime"].store, world["runtime"].redis
    control = store.keys.control(world["running"])
    redis.delete(control)
    result = world["service"].pause(world["running"], ALICE)
    assert result.changed
    assert redis.ttl(control) > 0, "a control key without a TTL never goes away"
    assert 0 < redis.ttl(control) <= store.settings.control_ttl_s


def test_refine_of_a_score_analysis_never_reports_a_lower_confidence(scratch_world):
    world = scratch_world
    runtime, service, dispatcher = world["runtime"], world["service"], world["dispatcher"]
    config = world["factory"].create_ranking_config(markets=30, top_k=10)
    owner = Actor("refiner")

    def run_all():
        while dispatcher.queue:
            analysis_id, chain, seq = dispatcher.queue.pop(0)
            if run_step(runtime, analysis_id, chain, seq).decision == "continue":
                dispatcher.enqueue_step(analysis_id, chain, seq + 1)

    gist = service.start(config, owner)
    run_all()
    done = service.get(gist.id, owner)
    assert done.status.value == "COMPLETED" and done.confidence < 0.99
    notes = []
    for _ in range(3):  # refine until the target is out of reach
        before = service.get(gist.id, owner)
        assert service.refine(gist.id, owner, generation=before.refine_gen).changed
        run_all()
        after = service.get(gist.id, owner)
        assert after.status.value == "COMPLETED"
        assert after.confidence >= before.confidence - 1e-9, (before.confidence, after.confidence)
        same = [m.symbol for m in after.result] == [m.symbol for m in before.result]
        if after.confidence + 1e-9 < after.target:
            assert "target" in after.note and "not reached" in after.note
        if same and after.confidence + 1e-9 < after.target:
            # Nothing steadier exists in this data: the note says so in a trader's words.
            assert "steadier" in after.note, after.note
        notes.append((before.confidence, after.confidence, same, after.note))
    assert any(same for _, _, same, _ in notes), notes  # the same answer was reported again
    assert notes[0][1] > notes[0][0], notes  # and the first refine did make it surer


class ScriptedJudge:
    """Answers every pair by a rule: enough to stage what a refine model may do."""

    def __init__(self, rule):
        self.rule = rule

    def compare_many(self, requests, *, model):
        from analysis.ranking.llm_judge import Verdict

        return [
            Verdict(r.first, r.second, self.rule(r.first, r.second), 0.9, model, False) for r in requests
        ], None


def test_refine_of_an_llm_analysis_says_why_the_same_answer_reads_less_sure():
    from analysis.models import RankingConfig
    from analysis.ranking.bradley_terry import default_budget
    from analysis.ranking.strategies.base import StepInput
    from analysis.ranking.strategies.llm import LLMStrategy

    markets = ["A/USDT", "B/USDT", "C/USDT", "D/USDT", "E/USDT", "F/USDT"]
    truth = lambda a, b: min(a, b)  # noqa: E731  A beats B beats C...
    second_shown = lambda a, b: b  # noqa: E731  a refine model with a strong position bias

    def run(config, state, target, rule):
        outcome = None
        while outcome is None or not outcome.done:
            outcome = LLMStrategy().step(
                StepInput("x", 1, config, state, target, "m", lambda b: {}, ScriptedJudge(rule))
            )
            state = outcome.state
        return outcome

    less_sure = []
    for case in range(8):  # the pairs asked depend on the config (its seed): stage a few
        config = RankingConfig(
            markets=markets,
            timeframe="1h",
            strategy="llm",
            top_k=2,
            target_confidence=0.8,
            batch_size=10,
            prompt=f"case {case}",
        )
        state = {
            "markets": markets,
            "phase": "comparing",
            "summaries": {s: "x" for s in markets},
            "snapshots": {s: {} for s in markets},
            "log": [],
            "budget": default_budget(6, 2),
            "target_seen": 0.8,
        }
        done = run(config, state, 0.8, truth)
        refined = run(config, done.state, 0.99, second_shown)
        same = {r["symbol"] for r in refined.result} == {r["symbol"] for r in done.result}
        if same and refined.confidence < done.confidence:  # the same answer, less sure: say why
            less_sure.append(case)
            assert f"confidence {done.confidence:.2f} before refining" in refined.note
            assert "less settled" in refined.note and "target 0.99 not reached" in refined.note
        else:
            assert "before refining" not in refined.note
    assert less_sure, "no case staged a less sure refine"


# Second review (#19), items 1 and 10
# The sandbox (`make run` without a Telegram token) and `make run`'s Flower answer only the person
# who ran it. Each refusal below is one line and changes nothing: for the sandbox, what the bot
# would get and what every chat shows are compared before and after (it keeps its state in memory,
# not in Redis); Flower only reads. More in tests/test_sandbox_access.py (each check alone),
# tests/test_sandbox_cross_origin.py (a real browser on another origin) and tests/test_flower_access.py.
SANDBOX_REFUSALS = {
    # name: (method, path, headers to change (None drops one), body, status, the line says)
    "a foreign Host (DNS rebinding)": (
        "POST",
        "/api/send",
        {"Host": "attacker.example:{port}"},
        "send",
        403,
        "answers only as 127.0.0.1",
    ),
    "a foreign Host on the Bot API": (
        "GET",
        "/bot{token}/sendMessage?chat_id=710003&text=hi",
        {"Host": "attacker.example:{port}"},
        None,
        403,
        "answers only as",
    ),
    "no secret": ("POST", "/api/send", {"X-Sandbox-Secret": None}, "send", 401, "needs its secret"),
    "another run's secret": (
        "GET",
        "/api/chat?user_id=710003&chat_id=710003&since=-1",
        {"X-Sandbox-Secret": "x" * 32},
        None,
        401,
        "needs its secret",
    ),
    "the page without the secret": ("GET", "/", {"X-Sandbox-Secret": None}, None, 401, "needs its secret"),
    "another origin sends": (
        "POST",
        "/api/send",
        {"Origin": "http://127.0.0.1:1"},
        "send",
        403,
        "another page",
    ),
    "another origin reads": (
        "GET",
        "/api/chat?user_id=710003&chat_id=710003&since=-1",
        {"Origin": "http://attacker.example"},
        None,
        403,
        "another page",
    ),
    "a change without Origin": ("POST", "/api/press", {"Origin": None}, "press", 403, "Origin header"),
    "a cross-site fetch": (
        "POST",
        "/api/send",
        {"Sec-Fetch-Site": "cross-site"},
        "send",
        403,
        "another site",
    ),
    "a text/plain body": (
        "POST",
        "/api/send",
        {"Content-Type": "text/plain"},
        "send",
        415,
        "application/json",
    ),
    "the old public bot token": (
        "GET",
        "/bot7000000001:SANDBOX-local-only/sendMessage?chat_id=710003&text=hi",
        {},
        None,
        401,
        "Unauthorized",
    ),
    "a javascript: link": ("POST", "/bot{token}/sendMessage", {}, "link", 400, "http, https and tg"),
    "a javascript: url button": ("POST", "/bot{token}/sendMessage", {}, "button", 400, "BUTTON_URL_INVALID"),
}
SANDBOX_BODIES = {
    "send": {"user_id": 710003, "chat_id": 710003, "text": "/schedule every=1h"},
    "press": {"user_id": 710003, "chat_id": 710003, "message_id": 1, "data": "x"},
    "link": {
        "chat_id": 710003,
        "text": '<a href="javascript:fetch(`/api/chat`)">chart</a>',
        "parse_mode": "HTML",
    },
    "button": {
        "chat_id": 710003,
        "text": "chart",
        "reply_markup": {"inline_keyboard": [[{"text": "open", "url": "javascript:alert(1)"}]]},
    },
}


@pytest.fixture(scope="module")
def sandbox_run():
    from sandbox.access import new_page_secret
    from sandbox.launch import new_bot_token, open_sandbox

    secret = new_page_secret()
    server = open_sandbox(0, token=new_bot_token(), secret=secret)
    yield server, secret
    server.stop()


@pytest.mark.parametrize("case", SANDBOX_REFUSALS)
def test_the_sandbox_refuses_in_one_line_and_nothing_changes(sandbox_run, case):
    import json
    import urllib.error
    import urllib.request

    from sandbox.cast import SANDBOX_CAST

    server, secret = sandbox_run
    method, path, changes, body, status, says = SANDBOX_REFUSALS[case]
    headers = {"X-Sandbox-Secret": secret, "Origin": server.url, "Content-Type": "application/json"}
    for name, value in changes.items():
        headers.pop(name, None)
        if value is not None:
            headers[name] = value.format(port=server.port)
    data = json.dumps(SANDBOX_BODIES[body]).encode() if body else None
    request = urllib.request.Request(
        server.url + path.format(token=server.token), data=data, headers=headers, method=method
    )
    chats = [p.user_id for p in SANDBOX_CAST.people] + [SANDBOX_CAST.group_id]

    def seen():
        return server.pending_updates, [[m.text for m in server.messages(c)] for c in chats]

    before = seen()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10)
    answer = json.loads(refused.value.read())
    line = answer.get("error") or answer.get("description")
    assert refused.value.code == status and says in line, (refused.value.code, line)
    assert "\n" not in line and line.isprintable() and len(line) < 300
    assert seen() == before


from tests.test_flower_access import local_flower  # noqa: E402,F401  (Flower as `make run` starts it)

FLOWER_REFUSALS = {
    # name: (Host, login, status)
    "a foreign Host with the login": ("attacker.example:{port}", "right", 403),
    "a rebound name with the login": ("127.0.0.1.nip.io:{port}", "right", 403),
    "another local port as Host": ("127.0.0.1:1", "right", 403),
    "no login": (None, None, 401),
    "a wrong password": (None, "wrong", 401),
}


@pytest.mark.slow
def test_make_runs_flower_refuses_a_foreign_host_and_no_login(local_flower):
    from tests.test_flower_access import basic, get

    port, user, password = local_flower
    logins = {"right": basic(user, password), "wrong": basic(user, password + "x"), None: {}}
    for case, (host, login, status) in FLOWER_REFUSALS.items():
        for path in ("/api/tasks", "/tasks/datatable", "/api/workers", "/", "/tasks"):
            headers = {**logins[login], **({"Host": host.format(port=port)} if host else {})}
            got, answer_headers, body = get(port, path, headers)
            assert got == status, (case, path, got)
            assert "marketrank" not in body and "FLOWER_UNAUTHENTICATED_API" not in body, (case, path)
            if status == 401 and not path.startswith("/api/"):  # a browser asks for the login
                assert answer_headers.get("www-authenticate", "").startswith("Basic"), (case, path)
    assert get(port, "/api/tasks", logins["right"])[0] == 200  # and the login it printed gets in


# Second review (#19), items 2, 3, 4, 11, 12, 14
def run_queued(world) -> None:
    """Run every step the dispatcher holds, in this process, until the queue is empty."""
    runtime, dispatcher = world["runtime"], world["dispatcher"]
    while dispatcher.queue:
        analysis_id, chain, seq = dispatcher.queue.pop(0)
        if run_step(runtime, analysis_id, chain, seq).decision == "continue":
            dispatcher.enqueue_step(analysis_id, chain, seq + 1)


def test_item2_a_refine_that_would_pass_the_active_limit_is_refused_like_a_start(scratch_world):
    world, dave = scratch_world, Actor("dave")
    service, config = world["service"], world["config"]
    done = [service.start(config, dave) for _ in range(3)]
    run_queued(world)
    running = [service.start(config, dave) for _ in range(3)]  # at the limit of 3 again
    world["dispatcher"].queue.clear()
    words = "you already have 3 analyses running; the limit is 3: cancel one or wait for it to finish"
    assert_refused_and_nothing_changed(world, lambda: service.start(config, dave), LimitReached, words)
    for gist in done:  # a refine would make it run again: a fourth active analysis
        assert_refused_and_nothing_changed(world, lambda: service.refine(gist.id, dave), LimitReached, words)
    # Refining one that runs already adds nothing active: it still raises the target.
    assert service.refine(running[0].id, dave).changed
    service.cancel(running[1].id, dave)
    assert service.refine(done[0].id, dave).changed  # one fewer running: the restart fits
    assert service.get(done[0].id, dave).status.value == "RUNNING"


def test_item2_refines_count_toward_the_hourly_quota_like_starts(redis_url, monkeypatch):
    monkeypatch.setenv("MAX_STARTS_PER_HOUR", "4")
    world = build_world(redis_url, SCRATCH_DB)  # Alice started 2 this hour; one completed
    service, completed = world["service"], world["completed"]
    for _ in range(2):  # each restart of the completed analysis counts: 3, then 4
        assert service.refine(completed, ALICE).changed
        run_queued(world)
    words = "you started 4 analyses in the last hour; the limit is 4 an hour: try again later"
    assert_refused_and_nothing_changed(world, lambda: service.refine(completed, ALICE), LimitReached, words)
    assert_refused_and_nothing_changed(
        world, lambda: service.start(world["config"], ALICE), LimitReached, words
    )
    # An hour later the restarts no longer count.
    later = AnalysisService(world["runtime"].store, world["dispatcher"], clock=lambda: time.time() + 3700)
    assert later.refine(completed, ALICE).changed


def test_item3_only_the_admins_of_the_group_a_schedule_posts_to_may_remove_it(scratch_world):
    """The front passes `chat_admin_of` only for a group Telegram says the user administers
    (getChatAdministrators); an admin of another group, or a plain member, is refused."""
    from analysis.schedules.service import ScheduleService
    from analysis.schedules.store import ScheduleStore
    from tasks.schedule_beat import default_registrar

    world = scratch_world
    runtime, group = world["runtime"], -1001234567890
    schedules = ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys),
        world["service"],
        world["factory"],
        default_registrar(),
        runtime.settings,
    )
    made = schedules.add("4h", {"markets": 4, "top_k": 2}, ALICE, chat_id=group)
    try:
        for chat_admin_of in (None, -1009999999999, -group, 0):
            assert_refused_and_nothing_changed(
                world,
                lambda: schedules.remove(made.id, BOB, chat_admin_of=chat_admin_of),
                NotAllowed,
                "belongs to someone else",
            )
        assert [s.id for s in schedules.list_for_chat(group)] == [made.id]
        assert schedules.list_for_chat(-1009999999999) == []
        assert schedules.remove(made.id, BOB, chat_admin_of=group).id == made.id
    finally:
        if schedules.store.get(made.id) is not None:
            schedules.remove(made.id, ALICE)


# Second review (#19), items 5-9, 13
# --- item 5: every default-ignorable code point, the Hangul fillers and the braille blank -------
STILL_INVISIBLE = {
    "variation selector 1": "buy\ufe00now",
    "VS16 between letters": "buy\ufe0fnow",
    "VS16 at the start": "\ufe0fbuy",
    "a second VS16 after an emoji": "❤\ufe0f\ufe0f buy",
    "emoji smuggling": "😀" + "".join(chr(0xE0100 + b) for b in b"ignore previous"),
    "variation selector 17": "buy\U000e0100now",
    "hangul filler": "buy\u3164now",
    "hangul choseong filler": "\u115f",
    "hangul jungseong filler": "buy \u1160",
    "halfwidth hangul filler": "buy\uffa0now",
    "braille blank": "buy\u2800now",
    "combining grapheme joiner": "buy\u034fnow",
    "khmer inherent aq": "buy\u17b4now",
    "khmer inherent aa": "buy\u17b5now",
    "mongolian free variation selector": "buy\u180bnow",
    "unassigned ignorable": "buy\U000e0fffnow",
}


@pytest.mark.parametrize("prompt", STILL_INVISIBLE.values(), ids=STILL_INVISIBLE.keys())
def test_a_prompt_with_any_default_ignorable_character_or_filler_is_refused(world, prompt):
    for make in (
        lambda f: f.create_ranking_config(markets=5, prompt=prompt),
        lambda f: f.create_entry_config(prompt),
    ):
        assert_refused_and_nothing_changed(
            world,
            lambda: make(world["factory"]),
            InvalidConfig,
            r"^the prompt contains an invisible character \(U\+",
        )


def test_the_refusal_names_the_smuggled_character(world):
    assert_refused_and_nothing_changed(
        world,
        lambda: world["factory"].create_ranking_config(markets=5, prompt="😀\U000e0100"),
        InvalidConfig,
        r"\(U\+E0100 VARIATION SELECTOR-17\); send plain text$",
    )


EMOJI_WITH_VS16 = {
    "heart": "❤️ strong",
    "keycap": "top 1️⃣ and 2️⃣",
    "arrow": "↗️ uptrend",
    "double exclamation": "‼️ breakout",
    "flag with zwj": "🏳️‍🌈 friendly",
    "skin tone": "👍🏽 solid volume",
    "family": "👨‍👩‍👧 long hold",
}


@pytest.mark.parametrize("prompt", EMOJI_WITH_VS16.values(), ids=EMOJI_WITH_VS16.keys())
def test_emoji_with_their_presentation_selector_are_still_welcome(world, prompt):
    assert world["factory"].create_ranking_config(markets=5, prompt=prompt).prompt == prompt


@pytest.mark.slow
def test_the_ignorable_table_is_unicodes_default_ignorable_set():
    """The table embedded in analysis/invisible.py agrees with the `regex` module's property."""
    regex = pytest.importorskip("regex")
    from analysis.invisible import is_default_ignorable

    pattern = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    differ = [
        hex(c) for c in range(0x110000) if (pattern.match(chr(c)) is not None) != is_default_ignorable(chr(c))
    ]
    assert not differ, differ[:20]


# --- items 8 and 9: settings a library would misread or refuse with a traceback -----------------
BAD_SETTINGS = {
    "redis password with #": (
        {"REDIS_URL": "redis://:Sup3r@Secret#pw@127.0.0.1:6473/0"},
        "bad setting REDIS_URL: write the '#' in the password as %23",
    ),
    "redis password with /": (
        {"REDIS_URL": "redis://:Sup3r/Secret@127.0.0.1:6473/0"},
        "bad setting REDIS_URL: write the '/' in the password as %2F",
    ),
    "redis scheme": (
        {"REDIS_URL": "http://127.0.0.1:6473/0"},
        "bad setting REDIS_URL: it must start with redis://, rediss:// or unix://",
    ),
    "redis port": (
        {"REDIS_URL": "redis://127.0.0.1:99999/0"},
        "bad setting REDIS_URL: its port must be a number from 1 to 65535",
    ),
    "unknown source": (
        {"MARKET_DATA": "bogus"},
        "bad setting MARKET_DATA=bogus: it is not a data source: use 'demo' or ",
    ),
    "unknown exchange": (
        {"MARKET_DATA": "ccxt:nosuch"},
        "bad setting MARKET_DATA=ccxt:nosuch: ccxt has no exchange 'nosuch'",
    ),
}
ENTRY_POINTS = {
    "cli": ["cli.main", "list"],
    "bot": ["bot"],
    "worker": ["celery", "-A", "tasks", "worker"],
    "beat": ["celery", "-A", "tasks", "beat"],
}


@pytest.mark.slow
def test_a_bad_redis_url_or_data_source_stops_every_program_with_one_line(tmp_path):
    base = {
        **os.environ,
        "MARKETRANK_VAR_DIR": str(tmp_path),
        "TELEGRAM_BOT_TOKEN": "123:abc",
        "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot",
    }
    # Each setting on the worker (it started "ready" with an unknown exchange), two on every program.
    cases = {(setting, "worker") for setting in BAD_SETTINGS} | {
        (setting, program)
        for setting in ("unknown exchange", "redis password with #")
        for program in ENTRY_POINTS
    }
    runs = {
        (setting, program): (*BAD_SETTINGS[setting], ENTRY_POINTS[program])
        for setting, program in sorted(cases)
    }

    def run(case):
        env, _, command = runs[case]
        return subprocess.run(
            [sys.executable, "-m", *command],
            cwd=Path(__file__).parent.parent,
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=180,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(runs, pool.map(run, runs)))
    problems = [
        f"{case}: exit {done.returncode}, stderr {done.stderr[-400:]!r}"
        for case, done in results.items()
        if done.returncode != 2
        or done.stdout
        or len(done.stderr.splitlines()) != 1
        or not done.stderr.startswith("error: " + runs[case][1])
    ]
    assert not problems, "\n".join(problems)
    for done in results.values():  # nothing of the password, not even the part read as a host
        assert "Sup3r" not in done.stderr and "Secret" not in done.stderr.replace("SECRET", "")


def test_a_cron_line_that_never_fires_is_refused_saying_why(world):
    from analysis.schedules.service import ScheduleService
    from analysis.schedules.store import ScheduleStore
    from tasks.schedule_beat import default_registrar

    runtime = world["runtime"]
    schedules = ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys),
        world["service"],
        world["factory"],
        default_registrar(),
        world["factory"].settings,
    )
    for line, why in (
        ('cron="0 0 31 2 *"', "February has no day 31"),
        ("0 9 30,31 2 *", "February has no day 30"),
        ("0 9 31 4,6,9,11 *", "none of its months has a day 31"),
    ):
        assert_refused_and_nothing_changed(
            world, lambda: schedules.add(line, {"markets": 5}, ALICE), InvalidConfig, f"never fires: {why}$"
        )
    assert schedules.add("0 9 29 2 *", {"markets": 5}, ALICE).every.cron == "0 9 29 2 *"


@pytest.mark.slow
def test_an_unreachable_bot_api_server_is_one_line_per_try_retried_with_backoff(tmp_path):
    """The bot keeps trying (1 s, 2 s, ...) with one warning each, and goes on once the server
    answers: here it answers 401, so the bot stops with its one line about the token."""
    import http.server
    import threading
    import time

    from tests.servers import free_port

    port = free_port()
    log = tmp_path / "bot.log"
    env = {
        **os.environ,
        "MARKETRANK_VAR_DIR": str(tmp_path),
        "TELEGRAM_BOT_TOKEN": "123:abc",
        "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{port}/bot",
    }
    with open(log, "w") as out:
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=Path(__file__).parent.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while (
            log.read_text().count("cannot be reached") < 2
            and bot.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert bot.poll() is None, log.read_text()

        class Unauthorized(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = b'{"ok":false,"error_code":401,"description":"Unauthorized"}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Unauthorized)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            assert bot.wait(timeout=60) == 2
        finally:
            server.shutdown()
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait()
    lines = log.read_text().splitlines()
    tries = [line for line in lines if "cannot be reached" in line]
    assert "retrying in 1 s" in tries[0] and "retrying in 2 s" in tries[1], lines
    assert [line for line in lines if line not in tries] == [
        f"error: the Bot API server at http://127.0.0.1:{port}/bot rejected TELEGRAM_BOT_TOKEN; "
        "check the token with @BotFather (or unset it to use the local sandbox)"
    ], lines
    assert (
        all(f"the Bot API server at http://127.0.0.1:{port}/bot cannot be reached" in line for line in tries)
        and "123:abc" not in log.read_text()
    )


# --- item 13: P(exact top K) reads high (0.341 reported, 0.267 realised): not shown anywhere ------
def test_the_uncalibrated_p_exact_is_shown_on_no_card_status_or_json():
    import json as jsonlib

    from analysis.models import Gist, RankingConfig, to_jsonable
    from bot.views import card_text
    from cli.main import describe

    config = RankingConfig(
        markets=["BTC/USDT", "ETH/USDT", "SOL/USDT"],
        timeframe="1h",
        strategy="llm",
        top_k=2,
        target_confidence=0.9,
    )
    order = {
        "shown": ["ETH/USDT", "BTC/USDT", "SOL/USDT"],
        "ranking": ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
        "model": "m",
    }
    state = {"log": [order] * 5, "list_size": 3, "estimate": {"p_exact": 0.341}}
    gist = Gist.from_hash(
        {
            "id": "abcdefghij",
            "owner": "42",
            "status": "COMPLETED",
            "seq": "3",
            "progress": "1",
            "confidence": "0.92",
            "target": "0.9",
            "config": config.model_dump_json(),
            "state": jsonlib.dumps(state),
            "result": "[]",
            "version": "1",
            "refine_gen": "0",
            "demo": "0",
            "created_at": "0",
            "updated_at": "0",
            "spend:calls": "5",
        }
    )
    shown = {
        "card": card_text(gist),
        "marketrank status": describe(gist),
        "marketrank status --json": jsonlib.dumps(to_jsonable(gist, [], None)),
    }
    assert all("5 orders of 3 · 5 LLM calls" in text for text in list(shown.values())[:2]), shown
    leaks = [
        where for where, text in shown.items() if "exactly" in text or "p_exact" in text or "0.34" in text
    ]
    assert not leaks, shown


# --- item 6: an exchange answer has a size bound -------------------------------------------------
from tests.test_live_data import binance, build_live, live_env  # noqa: E402,F401 (the emulator)


@pytest.fixture
def exchange(binance, monkeypatch, shared_data_dir):  # noqa: F811
    """The real ccxt client against the emulator, with settings of this test's environment."""
    from analysis.markets.registry import provider_from_spec
    from analysis.settings import get_settings

    def build(**env: str):
        live_env(monkeypatch, binance.url, **env)
        binance.down = False
        binance.clear_faults()
        binance.reset_counts()
        return build_live(binance)

    yield build
    monkeypatch.undo()
    get_settings.cache_clear()
    provider_from_spec.cache_clear()


def test_an_exchange_answer_of_2000_times_the_rows_is_refused_at_the_byte_cap(exchange):
    """What grew the CLI to 2.8 GB: every klines answer carries 2,000 times the rows asked for."""
    import resource

    from analysis.errors import DataUnavailable

    live = exchange(CCXT_RETRIES="1")  # the default byte cap, 32 MiB
    live.provider.sleep = lambda s: None
    live.server.oversized_next(10, factor=2000)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(
        DataUnavailable,
        match=r"^binance sent a malformed answer \(more than 32 MiB\) "
        r"for BTC/USDT 1h candles \(2 tries\)$",
    ):
        live.factory.create_ranking_config(symbols=["BTC/USDT", "ETH/USDT"], top_k=1)
    assert live.server.count("/api/v3/klines") == 2  # retried once (CCXT_RETRIES=1), then refused
    # 2,000 pages of rows are over 300 MB of JSON and several times that parsed: none was kept.
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 150, f"the process grew by {grown_mb:.0f} MB"


def test_an_oversized_answer_mid_run_pauses_the_analysis_naming_the_exchange(exchange):
    import time

    live = exchange(CCXT_RETRIES="1")
    actor = Actor(f"oversized-{os.getpid()}")
    config = live.factory.create_ranking_config(symbols=["BTC/USDT", "ETH/USDT", "LINK/USDT"], top_k=2)
    gist = live.service.start(config, actor)
    live.provider.sleep = lambda s: None
    live.provider.cache.clock = lambda: time.time() + 3600  # a candle closed before INIT ran
    live.server.oversized_next(2, factor=2000)
    live.queue.drain(live.runtime)
    paused = live.service.get(gist.id, actor)
    assert (paused.status.value, paused.reason) == (
        "PAUSED",
        "binance sent a malformed answer (2,000 rows for a limit of 1) for BTC/USDT 1h candles (2 tries)",
    )
    assert live.service.resume(gist.id, actor).changed
    live.queue.drain(live.runtime)
    assert live.service.get(gist.id, actor).status.value == "COMPLETED"


def test_more_rows_than_the_limit_asked_for_are_a_malformed_answer_retried(exchange):
    from analysis.errors import DataUnavailable

    live = exchange()
    live.provider.sleep = lambda s: None
    live.server.oversized_next(1, factor=2, symbol="XRP/USDT")
    frame = live.provider.candles("XRP/USDT", "1h", 300)  # the second answer is whole
    assert len(frame) == 300 and live.server.count("/api/v3/klines", "XRP/USDT") == 2
    live.server.oversized_next(10, factor=2, symbol="SOL/USDT")
    with pytest.raises(
        DataUnavailable,
        match=r"^binance sent a malformed answer \(600 rows for a limit "
        r"of 300\) for SOL/USDT 1h candles \(4 tries\)$",
    ):
        live.provider.candles("SOL/USDT", "1h", 300)


# --- item 7: the Chart button is throttled (through the real bot and the sandbox Bot API) -------
from tests.test_bot import api, logged_errors, people  # noqa: E402,F401 (the bot tests' fixtures)


@pytest.mark.usefixtures("worker")
def test_chart_presses_draw_once_per_state_and_past_the_limit_get_a_polite_answer(
    api,
    people,  # noqa: F811
    logged_errors,
):  # noqa: F811
    import logging

    from tests.test_bot import (
        RunningBot,
        analysis_id_of,
        bot_settings,
        some_markets,
        wait_for_card,
        wait_for_status,
    )

    drawn: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "drew the chart" in record.getMessage():
                drawn.append(record)

    collect, chart_logger = Collect(level=logging.INFO), logging.getLogger("bot.chart_cache")
    chart_logger.addHandler(collect)
    chart_logger.setLevel(logging.INFO)
    settings = bot_settings(api, people, chart_presses_per_minute=3)
    try:
        with RunningBot(api, settings):
            api.send_message(people.trader, f"/rank symbols={some_markets(4)} top=2")
            card = wait_for_card(api, people.trader)
            card = wait_for_status(api, people.trader, card.message_id, "Completed", timeout=60)
            analysis_id = analysis_id_of(card)
            chart = api.button_data(people.trader, card.message_id, "Chart")
            queries = [api.press_button(people.trader, card.message_id, chart) for _ in range(8)]
            answers = [api.wait_for_callback_answer(q, timeout=30).text for q in queries]
            # The presses answered, the three admitted ones' photos are the last sends to wait for.
            photos = api.wait_for(
                lambda: (
                    (sent := [m for m in api.messages(people.trader, from_bot=True) if m.photo])
                    and len(sent) >= 3
                    and sent
                ),
                timeout=30,
            )
    finally:
        chart_logger.removeHandler(collect)
    polite = [
        a
        for a in answers
        if a.startswith("That is 3 charts this minute, as many as I send; please try again in ")
    ]
    assert answers.count("Sending the chart…") == 3 and len(polite) == 5, answers
    assert len(photos) == 3 and all(p.photo.is_png for p in photos)
    assert len(drawn) == 1 and analysis_id in drawn[0].getMessage(), [r.getMessage() for r in drawn]
    assert logged_errors == []


# --- issue 21: the track record's filters (marketrank track; /track parses the same words) -----
TRACK_FILTERS = {
    "unknown word": ["banana"],
    "three words": ["score", "1h", "4h"],
    "two timeframes": ["1h", "4h"],
    "two strategies": ["score", "llm"],
    "ansi": ["\x1b[2Jscore"],
    "long": ["a" * 10_000],
    "bidi": ["score\u202e"],
    "fullwidth": ["ｓｃｏｒｅ"],
    "injection": ["score;rm -rf /"],
}


@pytest.mark.slow
def test_track_filters_that_are_neither_a_strategy_nor_a_timeframe_are_one_error_line(redis_url):
    url = redis_url_db(redis_url, CLI_DB)
    runtime = Runtime(Settings(redis_url=url, market_data="demo"))
    env = {**os.environ, "REDIS_URL": url, "MARKET_DATA": "demo"}
    before = redis_snapshot(runtime.redis)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(
            zip(
                TRACK_FILTERS,
                pool.map(lambda words: run_marketrank(env, ["track", *words]), TRACK_FILTERS.values()),
            )
        )
    for name, done in results.items():
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1 and not done.stdout, (name, done.stderr)
        assert lines[0].startswith("error: ") and lines[0].isprintable() and len(lines[0]) < 300, name
    assert redis_snapshot(runtime.redis) == before


# Maintenance (#23) ---------------------------------------------------------------------------
def test_maintenance_is_refused_to_a_trader_and_changes_nothing(world):
    from analysis.maintenance import MaintenanceService

    maintenance = MaintenanceService(world["service"])
    world["dispatcher"].queue.clear()  # an INIT an earlier test of this module started on purpose
    for call in (maintenance.on, maintenance.off):
        assert_refused_and_nothing_changed(
            world, lambda: call(ALICE), NotAllowed, match="maintenance is for admins"
        )


def test_during_maintenance_starts_refines_and_resumes_are_refused_and_change_nothing(scratch_world):
    from analysis.errors import UnderMaintenance
    from analysis.maintenance import MaintenanceService

    world, service = scratch_world, scratch_world["service"]
    service.pause(world["running"], ALICE)
    maintenance = MaintenanceService(service)
    maintenance.on(Actor("ops", is_admin=True))
    message = "marketrank is being updated; try again in a few minutes"
    for call in (
        lambda: service.start(world["config"], ALICE),
        lambda: service.refine(world["completed"], ALICE),
        lambda: service.resume(world["running"], ALICE),
    ):
        assert_refused_and_nothing_changed(world, call, UnderMaintenance, match=message)
    assert maintenance.off(Actor("ops", is_admin=True)).resumed == []  # a trader's pause stays


def test_the_bots_maintenance_command_is_refused_to_traders_and_strangers_and_changes_nothing(redis_url):
    """Through the real bot against the sandbox, on a Redis database of its own; what may change is
    only the update ledger (every update is recorded once handled) and the notifier's reading
    position in the events stream, never an event."""
    import random

    from sandbox import BotApiServer
    from tests.test_bot import People, RunningBot, ask, bot_settings

    people = People()
    with BotApiServer(token=f"{random.randrange(10**6, 10**9)}:TEST") as api:
        settings = bot_settings(api, people, redis_url=redis_url_db(redis_url, NOTICE_DB + 1))
        runtime = Runtime(settings)
        runtime.redis.flushdb()
        with RunningBot(api, settings):
            ask(api, people.trader, "/help")  # the bot is up and has recorded an update

            def state():
                keep = {
                    k: v
                    for k, v in redis_snapshot(runtime.redis).items()
                    if not k.startswith(f"{runtime.keys.prefix}update:".encode())
                    and k != runtime.keys.events().encode()
                }
                return keep, runtime.redis.xlen(runtime.keys.events())

            before = state()
            for user, words in ((people.trader, "on"), (people.trader, "off"), (people.other, "status")):
                assert ask(api, user, f"/maintenance {words}") == "Sorry, that command is for admins."
            assert ask(api, people.stranger, "/maintenance on").startswith("Sorry, this bot is private.")
            assert state() == before
            assert runtime.store.maintenance_since() is None
        runtime.redis.close()


# Export (#24)
from tests.test_export import listener_port  # noqa: E402,F401  (the real listener, `python -m listener`)

EXPORT_REFUSALS = {
    # name: (path, headers (besides the right Host), status)
    "no token": ("/export/{id}", {}, 401),
    "a wrong token": ("/export/{id}", {"Authorization": "Bearer {wrong}"}, 401),
    "the token cut short": ("/export/{id}", {"Authorization": "Bearer {short}"}, 401),
    "another schedule's token": ("/export/{id}", {"Authorization": "Bearer {other}"}, 401),
    "the token as Basic": ("/export/{id}", {"Authorization": "Basic {token}"}, 401),
    "the token as a query": ("/export/{id}?token={token}", {}, 401),
    "an unknown schedule": ("/export/zzzzzzzz", {"Authorization": "Bearer {token}"}, 401),
    "a path outside": ("/export/..%2f..%2fetc", {"Authorization": "Bearer {token}"}, 401),
    "a huge id": ("/export/" + "a" * 4000, {"Authorization": "Bearer {token}"}, 401),
    "a control character": ("/export/abc%0d%0aX", {"Authorization": "Bearer {token}"}, 401),
    "a foreign Host": (
        "/export/{id}",
        {"Authorization": "Bearer {token}", "Host": "attacker.example:{port}"},
        403,
    ),
    "a rebound name": (
        "/export/{id}",
        {"Authorization": "Bearer {token}", "Host": "127.0.0.1.nip.io:{port}"},
        403,
    ),
    "a web page's fetch": (
        "/export/{id}",
        {"Authorization": "Bearer {token}", "Origin": "http://127.0.0.1:1"},
        403,
    ),
    "an unknown route": ("/metrics", {"Authorization": "Bearer {token}"}, 404),
}


@pytest.mark.slow
def test_the_export_listener_refuses_in_one_line_and_serves_nothing(runtime, queue, factory, listener_port):  # noqa: F811
    import uuid

    from analysis.export import ExportService
    from analysis.schedules.service import ScheduleService
    from analysis.schedules.store import ScheduleStore
    from tasks.schedule_beat import default_registrar
    from tests.test_export import get

    settings = Settings(
        schedule_min_interval_s=1, allowed_user_ids=[], admin_user_ids=[], export_port=listener_port
    )
    schedules = ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys),
        AnalysisService(runtime.store, queue),
        factory,
        default_registrar(),
        settings,
    )
    made = schedules.add("1h", {"markets": 5, "top_k": 2}, ALICE)
    other = schedules.add("1h", {"markets": 5, "top_k": 2}, BOB)
    exports = ExportService(schedules)
    token, others = exports.enable(made.id, ALICE).token, exports.enable(other.id, BOB).token
    run = schedules.fire(made.id, fire_id=uuid.uuid4().hex).analysis_id
    queue.drain(runtime)

    def state():  # the keys of these schedules and their run (the session's worker may be busy elsewhere)
        return {
            k: v
            for k, v in redis_snapshot(runtime.redis).items()
            if any(part.encode() in k for part in (made.id, other.id, run))
        }

    values = {
        "id": made.id,
        "token": token,
        "wrong": "A" * 43,
        "short": token[:-2],
        "other": others,
        "port": listener_port,
    }
    before = state()
    assert before
    for case, (path, headers, status) in EXPORT_REFUSALS.items():
        got, answer_headers, body = get(
            listener_port,
            path.format(**values),
            extra={k: v.format(**values) for k, v in headers.items()},
            host=headers.get("Host", "").format(**values) or None,
        )
        line = body.decode()
        assert got == status, (case, got, line)
        assert line.count("\n") == 1 and line.strip().isprintable() and len(line) < 200, case
        assert "pairs" not in line and token not in line, case
        assert not any(name.startswith("access-control") for name in answer_headers), case
    assert state() == before
    with pytest.raises(NotAllowed, match="belongs to someone else"):
        exports.enable(made.id, BOB)
    with pytest.raises(NotAllowed, match="belongs to someone else"):
        exports.revoke(made.id, BOB)
    with pytest.raises(InvalidConfig, match="export must be freqtrade or freqtrade-futures"):
        exports.enable(made.id, ALICE, "freqtrade\x1b[2J")
    assert state() == before
    assert get(listener_port, f"/export/{made.id}", token)[0] == 200  # the right token still works


# Settings (#24) ---------------------------------------------------------------------------------
from analysis.user_settings import UserSettingsService, UserSettingsStore  # noqa: E402
from bot import settings_callbacks  # noqa: E402
from bot.parsing import UsageError  # noqa: E402
from bot.settings_parsing import parse_settings_args  # noqa: E402

SETTINGS_DB = 11  # a Redis database of its own for this block

SETTINGS_REFUSALS = {
    # name: (what the user wrote after /settings, the error, what the message must say)
    "an unknown zone": ("tz=Europe/Berlinn", InvalidConfig, "give an IANA name such as Europe/Berlin"),
    "a fixed offset": ("tz=+01:00", InvalidConfig, "unknown time zone"),
    "a path as zone": ("tz=../../etc/passwd", InvalidConfig, "unknown time zone"),
    "a redis key as zone": ("tz=mr:settings:*", InvalidConfig, "unknown time zone"),
    "a control character": ("tz=Europe/Berlin\x1b[2J", InvalidConfig, "unknown time zone"),
    "a huge zone": ("tz=" + "A" * 10_000, InvalidConfig, "unknown time zone"),
    "hours only": (
        "quiet=23-07",
        InvalidConfig,
        "give quiet hours as HH:MM-HH:MM in your zone, e.g. 23:00-07:00, or off",
    ),
    "24:00": ("quiet=22:00-24:00", InvalidConfig, "HH:MM-HH:MM"),
    "an empty window": ("quiet=07:00-07:00", InvalidConfig, "start and end at the same time"),
    "a window of words": ("quiet=night", InvalidConfig, "HH:MM-HH:MM"),
    "an unknown mode": ("finished=loud", InvalidConfig, "finished can be on, silent or off"),
    "an unknown kind": (
        "everything=off",
        UsageError,
        "unknown setting 'everything': use tz, quiet, finished",
    ),
    "no value": ("tz", UsageError, "is not key=value"),
    "twice": ("tz=UTC tz=Asia/Tokyo", UsageError, "tz is given twice"),
    "an open quote": ('tz="Europe/Berlin', UsageError, "a quote is not closed"),
    "admin alerts by a trader": ("admin_alerts=off", NotAllowed, "admin alerts are for admins"),
}


@pytest.fixture(scope="module")
def settings_world(redis_url):
    settings = Settings(redis_url=redis_url_db(redis_url, SETTINGS_DB), market_data="demo")
    runtime = Runtime(settings)
    runtime.redis.flushdb()
    service = UserSettingsService(UserSettingsStore(runtime.redis, runtime.keys, max_held=5, held_ttl_s=60))
    service.change("1001", Actor("1001"), zone="Asia/Tokyo", quiet="22:00-06:00")
    return dict(runtime=runtime, service=service, dispatcher=RecordingDispatcher())


@pytest.mark.parametrize("case", SETTINGS_REFUSALS, ids=list(SETTINGS_REFUSALS))
def test_bad_settings_are_refused_in_one_line_and_change_nothing(settings_world, case):
    words, error, says = SETTINGS_REFUSALS[case]
    service = settings_world["service"]
    assert_refused_and_nothing_changed(
        settings_world, lambda: service.change("1001", Actor("1001"), **parse_settings_args(words)), error
    )
    with pytest.raises(error) as raised:
        service.change("1001", Actor("1001"), **parse_settings_args(words))
    assert says in str(raised.value)


@pytest.mark.parametrize("actor", [Actor("1002"), Actor("1002", is_admin=True)], ids=["a trader", "an admin"])
def test_nobody_changes_another_users_settings(settings_world, actor):
    service = settings_world["service"]
    assert_refused_and_nothing_changed(
        settings_world,
        lambda: service.change("1001", actor, zone="UTC"),
        NotAllowed,
        "only you can change your settings",
    )


@pytest.mark.parametrize(
    "data",
    [
        "u1:m:1001:finished:on ",
        "u1:m:1001:finished:ON",
        "u1:m:1001:finished",
        "u1:m:1001:admin_alerts:loud",
        "u1:q:1001:23:00-07:00",
        "u1:z:1001:Europe/Berlin",
        "u1:m:mr:settings:*:finished:on",
        "u0:m:1001:finished:on",
        "u1:m:1001:finished:on\x00",
        "u1:m:" + "1" * 60 + ":finished:on",
        "s1:rm:abcdefgh:m",
        "v1:pause:k3f9a2xq7m",
    ],
)
def test_forged_settings_buttons_do_not_parse(data):
    assert settings_callbacks.parse(data) is None


@pytest.mark.slow
def test_marketrank_settings_refuses_a_user_that_is_not_an_id(redis_url):
    env = {**os.environ, "REDIS_URL": redis_url_db(redis_url, SETTINGS_DB), "MARKET_DATA": "demo"}
    for bad in ("alice", "mr:settings:*", "1 2", "../x"):
        done = run_marketrank(env, ["settings", bad])
        lines = done.stderr.splitlines()
        assert (
            done.returncode == 2
            and len(lines) == 1
            and lines[0].startswith("error: a user is a Telegram user id")
        )


# The bot's webhook door (#23) ------------------------------------------------------------------
# Each refusal is one line, grants no CORS, and leaves nothing on the real Application's update
# queue (the only way into the handlers). Each check alone: tests/test_bot_webhook_door.py; through
# the real bot processes behind a proxy: tests/test_bot_webhooks.py.
from tests.test_bot_webhook_door import headers as webhook_headers  # noqa: E402
from tests.test_bot_webhook_door import through_the_door  # noqa: E402

JSON_TYPE = webhook_headers(Content_Type="application/json")
WEBHOOK_REFUSALS = {
    # name: (request as aiohttp keywords, replacing those of Telegram's own POST; status)
    "a foreign Host": ({"headers": webhook_headers(Host="attacker.example")}, 403),
    "a rebound name": ({"headers": webhook_headers(Host="bot.example.com.nip.io")}, 403),
    "a web page's fetch": ({"headers": webhook_headers(Origin="https://page.example")}, 403),
    "no secret": ({"headers": webhook_headers(X_Telegram_Bot_Api_Secret_Token=None)}, 403),
    "a wrong secret": ({"headers": webhook_headers(X_Telegram_Bot_Api_Secret_Token="A" * 19)}, 403),
    "the secret as a query": (
        {
            "path": "/telegram?secret_token=wh-secret_for-tests",
            "headers": webhook_headers(X_Telegram_Bot_Api_Secret_Token=None),
        },
        403,
    ),
    "a form post": ({"json": None, "data": {"update_id": "7"}}, 415),
    "not JSON": ({"json": None, "data": b"update_id=7", "headers": JSON_TYPE}, 400),
    "a control character": ({"json": None, "data": b'{"update_id": 7\x00}', "headers": JSON_TYPE}, 400),
    "no Update": ({"json": {"update_id": -1.5}}, 400),
    "over 1 MiB": ({"json": {"update_id": 7, "padding": "x" * (1 << 20)}}, 413),
    "a GET": ({"method": "GET"}, 405),
    "an unknown route": ({"path": "/telegram/../metrics"}, 404),
}


@pytest.mark.parametrize("case", WEBHOOK_REFUSALS)
def test_the_bots_webhook_refuses_in_one_line_and_queues_nothing(case):
    request, status = WEBHOOK_REFUSALS[case]
    [(got, line, answer_headers)], queued = through_the_door([request])
    assert got == status and line.count("\n") == 1 and line.strip().isprintable() and len(line) < 200, line
    assert not any(name.lower().startswith("access-control") for name in answer_headers) and queued == []
