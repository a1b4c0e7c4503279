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
    "none": None, "int": 123, "float": 4.5, "nan": math.nan, "list": ["abcdefghij"],
    "dict": {"id": "abcdefghij"}, "bytes": b"abcdefghij", "empty": "", "blank": "   ",
    "unknown": "zzzzzzzzzz", "too short": "abc", "too long": "a" * 10_000,
    "path": "../../etc/passwd", "glob": "*", "key name": "mr:analysis:*",
    "redis protocol": "abcd\r\nFLUSHALL\r\n", "nul": "abcd\x00", "ansi escape": "abcd\x1b[2J",
    "fullwidth": "ａｂｃｄｅｆｇｈｉｊ", "outside the alphabet": "l0l0l0l0l0",
    "sql": "abcd' OR '1'='1", "emoji": "🚀🚀🚀🚀",
}
ACTIONS = ("get", "status_document", "pause", "resume", "refine", "cancel")


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
    return dict(runtime=runtime, service=service, factory=factory, config=config,
                dispatcher=dispatcher, running=running.id, completed=completed.id, bobs=bobs.id)


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
            world, lambda: world["service"].force_resume(bad_id, admin), NotFound)


@pytest.mark.parametrize("action", ACTIONS)
def test_another_users_analysis_is_refused(world, action):
    method = getattr(world["service"], action)
    assert_refused_and_nothing_changed(world, lambda: method(world["bobs"], ALICE), NotAllowed,
                                       "belongs to someone else")
    # A short id only ever resolves among the caller's own analyses.
    assert_refused_and_nothing_changed(world, lambda: method(world["bobs"][:5], ALICE), NotFound)


def test_force_resume_is_refused_to_users_even_on_their_own_analysis(world):
    for analysis_id in (world["running"], world["bobs"]):
        assert_refused_and_nothing_changed(
            world, lambda: world["service"].force_resume(analysis_id, ALICE), NotAllowed)


def test_the_per_user_limit_refuses_a_new_analysis_and_writes_nothing(world):
    assert_refused_and_nothing_changed(
        world, lambda: world["service"].start(world["config"], CAROL), LimitReached, "the limit is 3")


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
        world, lambda: world["service"].refine(world["completed"], ALICE, generation=generation),
        InvalidConfig)


# --- configs: the factory validates everything a front passes -----------------------------------
def too_many_symbols():
    return [f"S{i}/USDT" for i in range(101)]


CONFIGS = {
    "markets str": dict(markets="10"), "markets float": dict(markets=10.5),
    "markets bool": dict(markets=True), "markets nan": dict(markets=math.nan),
    "markets negative": dict(markets=-3), "markets zero": dict(markets=0),
    "markets one": dict(markets=1), "markets huge": dict(markets=10**18),
    "markets beyond the data": dict(markets=99),
    "markets and symbols": dict(markets=5, symbols=["BTC/USDT", "ETH/USDT"]),
    "top str": dict(markets=5, top_k="3"), "top float": dict(markets=5, top_k=2.5),
    "top bool": dict(markets=5, top_k=True), "top zero": dict(markets=5, top_k=0),
    "top negative": dict(markets=5, top_k=-1), "top huge": dict(markets=5, top_k=10**30),
    "target str": dict(markets=5, target="0.9"), "target bool": dict(markets=5, target=True),
    "target above": dict(markets=5, target=1.5), "target negative": dict(markets=5, target=-0.1),
    "target nan": dict(markets=5, target=math.nan), "target inf": dict(markets=5, target=math.inf),
    "target huge": dict(markets=5, target=10**400),
    "timeframe unknown": dict(markets=5, timeframe="1y"), "timeframe empty": dict(markets=5, timeframe=""),
    "timeframe none": dict(markets=5, timeframe=None),
    "timeframe injection": dict(markets=5, timeframe="1h; FLUSHALL"),
    "timeframe control": dict(markets=5, timeframe="1h\x1b[2J"),
    "timeframe fullwidth": dict(markets=5, timeframe="１ｈ"),
    "strategy internal": dict(markets=5, strategy="noop"),
    "strategy unconfigured llm": dict(markets=5, strategy="llm"),
    "strategy none": dict(markets=5, strategy=None), "strategy list": dict(markets=5, strategy=["score"]),
    "strategy newline": dict(markets=5, strategy="score\n"),
    "prompt one too long": dict(markets=5, prompt="x" * 501),
    "prompt 10 MB": dict(markets=5, prompt="x" * 10_000_000),
    "prompt bell": dict(markets=5, prompt="buy \x07 now"),
    "prompt ansi": dict(markets=5, prompt="\x1b[2J\x1b[31mred"),
    "prompt nul": dict(markets=5, prompt="a\x00b"), "prompt del": dict(markets=5, prompt="a\x7fb"),
    "prompt bytes": dict(markets=5, prompt=b"bytes"), "prompt none": dict(markets=5, prompt=None),
    "prompt int": dict(markets=5, prompt=42),
    "symbols one": dict(symbols=["BTC/USDT"]), "symbols none given": dict(symbols=[]),
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
def test_a_bad_config_is_refused_with_a_clear_error(world, arguments):
    assert_refused_and_nothing_changed(
        world, lambda: world["factory"].create_ranking_config(**arguments), InvalidConfig)


@pytest.mark.parametrize("arguments", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_config_of_the_wrong_type_is_refused_with_a_clear_error(world, arguments):
    assert_refused_and_nothing_changed(
        world, lambda: world["factory"].create_ranking_config(**arguments), InvalidConfig)


@pytest.mark.parametrize("make", [
    lambda f: f.create_exit_config([]), lambda f: f.create_exit_config("BTC/USDT"),
    lambda f: f.create_exit_config(["BTC/USDT", "ETH/USDT"], "x" * 501),
    lambda f: f.create_entry_config(None), lambda f: f.create_entry_config("\x1b]0;title\x07"),
], ids=["exit nothing held", "exit a string", "exit long prompt", "entry no prompt", "entry osc escape"])
def test_bad_entry_and_exit_requests_are_refused(world, make):
    assert_refused_and_nothing_changed(world, lambda: make(world["factory"]), InvalidConfig)


def test_unicode_prompts_are_welcome_and_kept_exactly(world):
    prompt = "Кто сильнее? 強気 📈 — ÉTH → 10% (٣)"
    config = world["factory"].create_ranking_config(markets=5, prompt=prompt)
    assert config.prompt == prompt


def test_a_prompt_with_bidi_controls_is_refused(world):
    assert_refused_and_nothing_changed(
        world, lambda: world["factory"].create_ranking_config(markets=5, prompt="buy \u202eyub"),
        InvalidConfig)


# --- the CLI, as a subprocess ---------------------------------------------------------------------
def cli_cases(ambiguous_prefix: str) -> dict[str, list[str]]:
    """The CLI's own layer (argument parsing, owners, ids, one-line errors) and a sample of each
    kind of config mistake; the service tests above go through every config check."""
    cases = {
        "no command": [], "unknown command": ["frobnicate"], "unknown flag": ["start", "--fast"],
        "markets not a number": ["start", "--markets", "abc"],
        "markets float": ["start", "--markets", "1.5"],
        "markets negative": ["start", "--markets", "-3"],
        "markets huge": ["start", "--markets", "9" * 30],
        "markets beyond int parsing": ["start", "--markets", "9" * 5000],
        "markets and symbols": ["start", "--markets", "5", "--symbols", "BTC/USDT,ETH/USDT"],
        "top negative": ["start", "--top", "-1"], "top huge": ["start", "--top", "9" * 30],
        "target nan": ["start", "--target", "nan"], "target overflow": ["start", "--target", "1e309"],
        "target text": ["start", "--target", "high"],
        "timeframe shell": ["start", "--timeframe", "1h; rm -rf /"],
        "timeframe ansi": ["start", "--timeframe", "1h\x1b[2J"],
        "strategy internal": ["start", "--strategy", "noop"],
        "strategy unconfigured llm": ["start", "--strategy", "llm"],
        "kind unknown": ["start", "--kind", "hack"], "exit without holdings": ["start", "--kind", "exit"],
        "prompt 100k": ["start", "--prompt", "x" * 100_000],
        "prompt ansi": ["start", "--prompt", "\x1b[31mred\x1b[0m"],
        "prompt invalid utf-8": ["start", "--prompt", os.fsdecode(b"\xff\xfe")],
        "entry prompt invalid utf-8": ["start", "--kind", "entry", "--prompt", os.fsdecode(b"buy \xc3")],
        "prompt zero width": ["start", "--prompt", "buy\u200bnow"],
        "prompt tag characters": ["start", "--kind", "entry", "--prompt", "hi\U000E0041\U000E0042"],
        "symbols invalid utf-8": ["start", "--symbols", os.fsdecode(b"BTC/USDT,\xff/USDT")],
        "symbols commas": ["start", "--symbols", ",,,"],
        "symbols cyrillic": ["start", "--symbols", "BTC/USDT,ВТС/USDT"],
        "symbols sql": ["start", "--symbols", "BTC/USDT,ETH/USDT'; DROP TABLE x;--"],
        "symbols redis protocol": ["start", "--symbols", "BTC/USDT,\r\nFLUSHALL\r\n"],
        "symbols too many": ["start", "--symbols", ",".join(too_many_symbols())],
        "owner empty": ["start", "--owner", ""], "owner newline": ["start", "--owner", "x\ny"],
        "owner glob": ["list", "--owner", "mr:*"], "owner fullwidth": ["start", "--owner", "ａｌｉｃｅ"],
        "markets timeframe": ["markets", "--timeframe", "1y"],
        "markets limit negative": ["markets", "--limit", "-5"], "markets limit zero": ["markets", "--limit", "0"],
        "pause without id": ["pause"],
        "status json unknown id": ["status", "--json", "zzzzzzzzzz"],
        "force-resume unknown id": ["force-resume", "zzzzzzzzzz"],
        "wait unknown id": ["wait", "zzzzzzzzzz"],
        "id ambiguous prefix": ["cancel", ambiguous_prefix],
    }
    for name, bad in (("empty", ""), ("glob", "*"), ("path", "../../etc/passwd"),
                      ("ansi", "abcd\x1b[2J"), ("long", "a" * 10_000),
                      ("fullwidth", "ａｂｃｄｅｆｇｈｉｊ"), ("newline", "abcd\nrm")):
        cases[f"id {name}"] = [command_for(name), bad]
    cases.update({  # marketrank backtest (issue 21): it reads no Redis and must write none
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
    })
    return cases


def command_for(name: str) -> str:
    """Spread the bad ids over the commands that take one."""
    commands = ("status", "pause", "resume", "refine", "cancel", "force-resume", "wait")
    return commands[sum(map(ord, name)) % len(commands)]


def run_marketrank(env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("marketrank")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True,
                          errors="replace", timeout=120)


def test_the_cli_refuses_bad_input_with_one_error_line_and_changes_nothing(redis_url):
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
    env = {**os.environ, "REDIS_URL": url, "MARKET_DATA": "demo", "OPENAI_API_KEY": "",
           "OPENAI_BASE_URL": ""}
    before = redis_snapshot(runtime.redis)
    cases = cli_cases(real[:4])
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = dict(zip(cases, pool.map(lambda args: run_marketrank(env, args), cases.values())))
    problems = []
    for name, done in results.items():
        lines = done.stderr.splitlines()
        if done.returncode == 0 or len(lines) != 1 or not lines[0].startswith("error: ") \
                or done.stdout or not lines[0].isprintable():
            problems.append(f"{name}: exit {done.returncode}, stdout {done.stdout[:200]!r}, "
                            f"stderr {done.stderr[:300]!r}")
    assert not problems, "\n".join(problems)
    assert redis_snapshot(runtime.redis) == before


# --- issue 12: holes a review found -----------------------------------------------------------
INVISIBLE = {
    "zero width space": "buy\u200bnow", "zero width non-joiner": "buy\u200cnow",
    "zero width joiner between letters": "buy\u200dnow", "word joiner": "buy\u2060now",
    "byte order mark": "\ufeffbuy now", "soft hyphen": "buy\u00adnow",
    "tag characters": "buy now" + "".join(chr(0xE0000 + ord(c)) for c in "sell everything"),
    "cancel tag": "buy\U000E007Fnow", "mongolian vowel separator": "buy\u180enow",
    "invisible separator": "buy\u2063now",
}


@pytest.mark.parametrize("prompt", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_prompt_with_invisible_characters_is_refused(world, prompt):
    for make in (lambda f: f.create_ranking_config(markets=5, prompt=prompt),
                 lambda f: f.create_entry_config(prompt),
                 lambda f: f.create_exit_config(["BTC/USDT", "ETH/USDT"], prompt)):
        assert_refused_and_nothing_changed(world, lambda: make(world["factory"]), InvalidConfig,
                                           "invisible")


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
    for config in (world["factory"].create_ranking_config(markets=5, prompt=prompt),
                   world["factory"].create_entry_config(prompt)):
        assert prompt in config.prompt


HIDDEN_JOINERS = {
    "alone": "\u200c", "at the start": "\u200cمی خواهم", "at the end": "میخواهم\u200c",
    "in a run": "می\u200c\u200c\u200cخواهم", "before a space": "می\u200c خواهم",
    "between persian and latin": "می\u200cbuy", "between two scripts": "می\u200cक",
    "between persian digits": "۱\u200c۲",
}


@pytest.mark.parametrize("prompt", HIDDEN_JOINERS.values(), ids=HIDDEN_JOINERS.keys())
def test_a_non_joiner_outside_a_word_is_still_refused_with_the_same_message(world, prompt):
    assert_refused_and_nothing_changed(
        world, lambda: world["factory"].create_ranking_config(markets=5, prompt=prompt),
        InvalidConfig, r"^the prompt contains an invisible character \(U\+200C ZERO WIDTH "
                       r"NON-JOINER\); send plain text$")


@pytest.mark.parametrize("prompt", ["\udcff\udcfe", "buy \udc80 now"], ids=["only", "inside"])
def test_a_prompt_that_is_not_valid_utf8_is_refused(world, prompt):
    assert_refused_and_nothing_changed(
        world, lambda: world["factory"].create_ranking_config(markets=5, prompt=prompt),
        InvalidConfig, "not valid UTF-8")


def test_the_prompt_limit_counts_what_the_trader_typed_not_the_template(world):
    factory, limit = world["factory"], world["factory"].settings.max_prompt_chars
    typed = "steady uptrend, " * (limit // 16) + "x" * (limit % 16)
    assert len(typed) == limit
    entry = factory.create_entry_config(typed)
    held = factory.create_exit_config(["BTC/USDT", "ETH/USDT"], typed)
    assert typed in entry.prompt and typed in held.prompt
    for make in (lambda f: f.create_entry_config(typed + "!"),
                 lambda f: f.create_exit_config(["BTC/USDT", "ETH/USDT"], typed + "!")):
        assert_refused_and_nothing_changed(world, lambda: make(factory), InvalidConfig,
                                           f"the prompt is {limit + 1} characters; the limit is {limit}")


def test_llm_without_a_prompt_asks_the_judge_a_sensible_default_question(world):
    from analysis.ranking.llm_judge import PairRequest, build_messages
    factory = RankingConfigFactory(world["factory"].settings, provider_from_spec("demo"),
                                   llm_configured=True)
    for blank in ("", "   "):
        config = factory.create_ranking_config(markets=5, timeframe="4h", strategy="llm", prompt=blank)
        assert config.prompt == "Which market has the stronger outlook over the next few 4h candles?"
        request = PairRequest(first="BTC/USDT", second="ETH/USDT", first_summary="a",
                              second_summary="b", question=config.prompt)
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
    assert NO_JUDGE in views.card_text(gist)
    with_judge = RankingConfigFactory(factory.settings, provider_from_spec("demo"), llm_configured=True)
    judged = with_judge.create_entry_config("strong momentum")
    assert judged.strategy == "llm" and judged.notice == ""


def test_the_cli_says_when_an_entry_question_is_not_used(redis_url):
    url = redis_url_db(redis_url, NOTICE_DB)
    runtime = Runtime(Settings(redis_url=url, market_data="demo"))
    runtime.redis.flushdb()
    env = {**os.environ, "REDIS_URL": url, "MARKET_DATA": "demo", "OPENAI_API_KEY": "",
           "OPENAI_BASE_URL": ""}
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
    assert_refused_and_nothing_changed(world, lambda: service.start(world["config"], CAROL),
                                       LimitReached, "the limit is 3")


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
        return [Verdict(r.first, r.second, self.rule(r.first, r.second), 0.9, model, False)
                for r in requests], None


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
            outcome = LLMStrategy().step(StepInput("x", 1, config, state, target, "m", lambda b: {},
                                                   ScriptedJudge(rule)))
            state = outcome.state
        return outcome

    less_sure = []
    for case in range(8):  # the pairs asked depend on the config (its seed): stage a few
        config = RankingConfig(markets=markets, timeframe="1h", strategy="llm", top_k=2,
                               target_confidence=0.8, batch_size=10, prompt=f"case {case}")
        state = {"markets": markets, "phase": "comparing", "summaries": {s: "x" for s in markets},
                 "snapshots": {s: {} for s in markets}, "log": [], "budget": default_budget(6, 2),
                 "target_seen": 0.8}
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
    "a foreign Host (DNS rebinding)": ("POST", "/api/send", {"Host": "attacker.example:{port}"}, "send",
                                       403, "answers only as 127.0.0.1"),
    "a foreign Host on the Bot API": ("GET", "/bot{token}/sendMessage?chat_id=710003&text=hi",
                                      {"Host": "attacker.example:{port}"}, None, 403, "answers only as"),
    "no secret": ("POST", "/api/send", {"X-Sandbox-Secret": None}, "send", 401, "needs its secret"),
    "another run's secret": ("GET", "/api/chat?user_id=710003&chat_id=710003&since=-1",
                             {"X-Sandbox-Secret": "x" * 32}, None, 401, "needs its secret"),
    "the page without the secret": ("GET", "/", {"X-Sandbox-Secret": None}, None, 401, "needs its secret"),
    "another origin sends": ("POST", "/api/send", {"Origin": "http://127.0.0.1:1"}, "send", 403, "another page"),
    "another origin reads": ("GET", "/api/chat?user_id=710003&chat_id=710003&since=-1",
                             {"Origin": "http://attacker.example"}, None, 403, "another page"),
    "a change without Origin": ("POST", "/api/press", {"Origin": None}, "press", 403, "Origin header"),
    "a cross-site fetch": ("POST", "/api/send", {"Sec-Fetch-Site": "cross-site"}, "send", 403, "another site"),
    "a text/plain body": ("POST", "/api/send", {"Content-Type": "text/plain"}, "send", 415, "application/json"),
    "the old public bot token": ("GET", "/bot7000000001:SANDBOX-local-only/sendMessage?chat_id=710003&text=hi",
                                 {}, None, 401, "Unauthorized"),
    "a javascript: link": ("POST", "/bot{token}/sendMessage", {}, "link", 400, "http, https and tg"),
    "a javascript: url button": ("POST", "/bot{token}/sendMessage", {}, "button", 400, "BUTTON_URL_INVALID"),
}
SANDBOX_BODIES = {
    "send": {"user_id": 710003, "chat_id": 710003, "text": "/schedule every=1h"},
    "press": {"user_id": 710003, "chat_id": 710003, "message_id": 1, "data": "x"},
    "link": {"chat_id": 710003, "text": '<a href="javascript:fetch(`/api/chat`)">chart</a>', "parse_mode": "HTML"},
    "button": {"chat_id": 710003, "text": "chart",
               "reply_markup": {"inline_keyboard": [[{"text": "open", "url": "javascript:alert(1)"}]]}},
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
    request = urllib.request.Request(server.url + path.format(token=server.token), data=data,
                                     headers=headers, method=method)
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
        assert_refused_and_nothing_changed(world, lambda: service.refine(gist.id, dave), LimitReached,
                                           words)
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
    assert_refused_and_nothing_changed(world, lambda: service.start(world["config"], ALICE), LimitReached,
                                       words)
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
    schedules = ScheduleService(ScheduleStore(runtime.redis, runtime.keys), world["service"],
                                world["factory"], default_registrar(), runtime.settings)
    made = schedules.add("4h", {"markets": 4, "top_k": 2}, ALICE, chat_id=group)
    try:
        for chat_admin_of in (None, -1009999999999, -group, 0):
            assert_refused_and_nothing_changed(
                world, lambda: schedules.remove(made.id, BOB, chat_admin_of=chat_admin_of), NotAllowed,
                "belongs to someone else")
        assert [s.id for s in schedules.list_for_chat(group)] == [made.id]
        assert schedules.list_for_chat(-1009999999999) == []
        assert schedules.remove(made.id, BOB, chat_admin_of=group).id == made.id
    finally:
        if schedules.store.get(made.id) is not None:
            schedules.remove(made.id, ALICE)
