"""The config factory: defaults, and every bad input refused with a message that names it."""

import pytest

from analysis.config_factory import RankingConfigFactory
from analysis.errors import InvalidConfig
from analysis.trader_text import normalize_symbol


def test_defaults_are_30_markets_top_10_on_1h_with_score(factory):
    config = factory.create_ranking_config()
    assert len(config.markets) == 30 and len(set(config.markets)) == 30
    assert (config.top_k, config.timeframe, config.strategy, config.target_confidence) == (
        10,
        "1h",
        "score",
        0.8,
    )
    assert config.data_source == "demo"


def test_symbols_are_normalised_and_deduplicated(factory):
    config = factory.create_ranking_config(symbols=["btc", "ETH-USDT", "sol_usdt", "BTC/USDT"], top_k=2)
    assert config.markets == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def test_available_markets_are_ordered_by_liquidity_and_have_enough_candles(factory):
    markets = factory.available_markets("1h")
    assert len(markets) >= 60
    assert factory.create_ranking_config(markets=5).markets == markets[:5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(symbols=["BTC/USDT", "NOPE/USDT"]), "unknown symbol NOPE/USDT"),
        (dict(timeframe="7m"), "unknown timeframe '7m'"),
        (dict(symbols=["BTC/USDT", "ETH/USDT"], top_k=3), "top 3 is larger than the 2 markets"),
        (dict(markets=5000), "5000 markets is too many; the limit is 100"),
        (dict(markets=90), "only 65 markets have enough 1h candles"),
        (dict(symbols=[]), "name at least two markets"),
        (dict(symbols=["BTC/USDT"]), "name at least two markets"),
        (dict(markets=1), "markets must be a whole number of at least 2"),
        (dict(markets=-3), "markets must be a whole number of at least 2"),
        (dict(top_k=0), "top must be a whole number of at least 1"),
        (dict(target=1.5), "target must be a confidence between 0.5 and 0.99"),
        (dict(target=float("nan")), "target must be a confidence between 0.5 and 0.99"),
        (dict(strategy="magic"), "unknown strategy 'magic'"),
        (dict(strategy="llm"), "set OPENAI_API_KEY"),
        (dict(prompt="x" * 501), "the prompt is 501 characters; the limit is 500"),
        (dict(prompt="buy\x00now"), "control characters"),
        (dict(symbols=["'; DROP TABLE--"]), "is not a market symbol"),
        (dict(markets=3, symbols=["BTC/USDT", "ETH/USDT"]), "not both"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_the_problem(factory, kwargs, message):
    with pytest.raises(InvalidConfig) as err:
        factory.create_ranking_config(**kwargs)
    assert message in str(err.value)


def test_unicode_prompt_is_kept_and_control_characters_are_not_echoed(factory):
    config = factory.create_ranking_config(markets=3, prompt="  лучший вход 🚀  ")
    assert config.prompt == "лучший вход 🚀"
    with pytest.raises(InvalidConfig) as err:
        normalize_symbol("\x1b[31mBTC")
    assert "\x1b" not in str(err.value)


def test_entry_and_exit_configs_use_their_own_prompt_templates(factory):
    entry = factory.create_entry_config("scalp", markets=5)
    assert entry.kind == "entry" and "long entry" in entry.prompt and "scalp" in entry.prompt
    assert entry.strategy == "score"  # no LLM configured in tests: score stands in
    exit_config = factory.create_exit_config(["BTC/USDT", "ETH/USDT", "SOL/USDT"], "taking profit")
    assert exit_config.kind == "exit" and "exited first" in exit_config.prompt
    assert exit_config.markets == ["BTC/USDT", "ETH/USDT", "SOL/USDT"] and exit_config.top_k == 2
    with pytest.raises(InvalidConfig, match="name the markets you hold"):
        factory.create_exit_config([], "x")


def test_llm_strategy_is_offered_once_a_judge_is_configured(runtime):
    factory = RankingConfigFactory(runtime.settings, runtime.provider, llm_configured=True)
    assert factory.create_ranking_config(markets=4, strategy="llm", top_k=2).strategy == "llm"
    assert factory.create_entry_config("x", markets=4, top_k=2).strategy == "llm"


def test_a_local_source_has_nothing_to_say_before_choosing(factory):
    """Demo and csv candles are read in well under a second: no acknowledgement first (the bot
    then answers with the card alone)."""
    assert not factory.provider.remote
    assert factory.choice_words(markets=30) is None and factory.choice_words() is None


def test_one_create_makes_every_kind_and_refuses_an_option_the_kind_does_not_take(factory):
    assert factory.create("rank", markets=4, top_k=2).kind == "rank"
    assert factory.create("entry", prompt="scalp", markets=5).kind == "entry"
    held = factory.create("exit", symbols=["BTC/USDT", "ETH/USDT"], prompt="taking profit")
    assert (held.kind, held.markets) == ("exit", ["BTC/USDT", "ETH/USDT"])
    with pytest.raises(InvalidConfig, match="strategy cannot be chosen for this kind"):
        factory.create("entry", prompt="x", strategy="llm")
    with pytest.raises(InvalidConfig, match="markets cannot be chosen for this kind"):
        factory.create("exit", symbols=["BTC/USDT", "ETH/USDT"], markets=5)
    with pytest.raises(InvalidConfig, match="unknown kind of analysis 'hold': use rank, entry, exit"):
        factory.create("hold")


@pytest.mark.shared_data
def test_a_config_says_whether_its_data_is_demo(factory, runtime, shared_data_dir):
    """The card's demo flag comes from the config the factory made, not from a provider the
    service builds again."""
    from analysis.markets.registry import provider_from_spec

    assert factory.create("rank", markets=4).demo
    real = RankingConfigFactory(runtime.settings, provider_from_spec(f"csv:{shared_data_dir}"))
    assert not real.create("rank", markets=4).demo
