"""Turns what a trader asked for into a validated `RankingConfig`, or says exactly what is wrong.

Nothing is written anywhere here: a config that fails validation leaves no trace.
"""

from typing import Any

from analysis.errors import InvalidConfig, quoted
from analysis.markets.base import TIMEFRAMES, MarketDataProvider, window_problem
from analysis.markets.candle_blocks import BLOCK_CANDLES
from analysis.markets.indicators import WARMUP_CANDLES
from analysis.models import RankingConfig
from analysis.settings import Settings
from analysis.trader_text import check_prompt, normalize_symbol

PUBLIC_STRATEGIES = ("score", "llm")
KINDS = ("rank", "entry", "exit")
ENTRY_TEMPLATE = (
    "Which market offers the better long entry over the next few {timeframe} candles? Trader's note: {prompt}"
)
EXIT_TEMPLATE = (
    "The trader holds these markets. Which one should be exited first, because "
    "its outlook over the next few {timeframe} candles is weakest? "
    "Trader's note: {prompt}"
)
RANK_TEMPLATE = "Which market has the stronger outlook over the next few {timeframe} candles?"
NO_JUDGE_NOTICE = "no LLM judge configured: ranked by indicators; your question was not used"
UNUSED_PROMPT_NOTICE = (
    "the score strategy ranks by indicators; your question was not used (strategy=llm uses it)"
)


class RankingConfigFactory:
    def __init__(
        self, settings: Settings, provider: MarketDataProvider, *, llm_configured: bool | None = None
    ):
        self.settings = settings
        self.provider = provider
        if llm_configured is None:
            llm_configured = bool(settings.openai_api_key or settings.openai_base_url)
        self.llm_configured = llm_configured

    @property
    def data_source(self) -> str:
        return self.provider.name

    def min_candles(self, views: int) -> int:
        return WARMUP_CANDLES + views

    def available_markets(self, timeframe: str = "1h", limit: int | None = None) -> list[str]:
        """Markets with enough candles for the indicators' warm-up and the confidence views
        (and few enough candles without trades), most traded first (24 h quote volume); the
        first `limit` of them when given (only those are fetched)."""
        self._check_timeframe(timeframe)
        return list(self._pick(timeframe, limit))

    def _pick(self, timeframe: str, limit: int | None) -> dict[str, int]:
        """The first `limit` rankable markets by volume -> when their newest candle closed."""
        chosen: dict[str, int] = {}
        for symbol, _ in self._candidates(timeframe):
            if limit is not None and len(chosen) >= limit:
                break
            problem, closes = self._check_window(symbol, timeframe)
            if problem is None:
                chosen[symbol] = closes
        return chosen

    def market_volumes(self, timeframe: str = "1h") -> list[tuple[str, float]]:
        """The candidates `markets=N` picks from, most traded first, with 24 h quote volume."""
        self._check_timeframe(timeframe)
        return self._candidates(timeframe)

    def _candidates(self, timeframe: str) -> list[tuple[str, float]]:
        """The source's markets by volume, without those whose base is in EXCLUDED_BASES
        (stablecoins and fiat: their price barely moves, ranking them is noise). A trader may
        still name such a pair with symbols=."""
        excluded = set(self.settings.excluded_bases)
        return [
            (symbol, volume)
            for symbol, volume in self.provider.market_volumes(timeframe)
            if symbol.split("/", 1)[0] not in excluded
        ]

    def _check_window(self, symbol: str, timeframe: str) -> tuple[str | None, int]:
        """Why the market cannot be ranked (or None), and when its newest candle closed."""
        needed, size = self.min_candles(self.settings.score_views), self.settings.window_candles
        # As many candles as INIT reads (the window's first block too), so a live source's cache
        # filled here serves INIT without another request.
        window = self.provider.candles(symbol, timeframe, size + BLOCK_CANDLES).iloc[-size:]
        problem = window_problem(symbol, window, timeframe, needed, self.settings.max_thin_share)
        closes = int(window.index[-1].value // 10**9) + TIMEFRAMES[timeframe] if len(window) else 0
        return problem, closes

    def create(self, kind: str = "rank", **options: Any) -> RankingConfig:
        """The one way every front (bot, CLI, schedules) turns a kind and a user's options into a
        config; an option the kind does not take is refused, not ignored."""
        if kind == "entry":
            return self.create_entry_config(options.pop("prompt", ""), **_without(options, "strategy"))
        if kind == "exit":
            symbols = options.pop("symbols", None) or []
            return self.create_exit_config(
                symbols, options.pop("prompt", ""), **_without(options, "strategy", "markets")
            )
        if kind != "rank":
            raise InvalidConfig(f"unknown kind of analysis {quoted(kind)}: use {', '.join(KINDS)}")
        return self.create_ranking_config(**options)

    def create_ranking_config(
        self,
        *,
        markets: int | None = None,
        symbols: list[str] | None = None,
        timeframe: str = "1h",
        top_k: int | None = None,
        strategy: str = "score",
        target: float | None = None,
        prompt: str = "",
        kind: str = "rank",
    ) -> RankingConfig:
        if kind not in KINDS:
            raise InvalidConfig(f"unknown kind of analysis {quoted(kind)}: use {', '.join(KINDS)}")
        timeframe = self._check_timeframe(timeframe)
        strategy = self._check_strategy(strategy)
        prompt = check_prompt(prompt, self.settings.max_prompt_chars)
        notice = ""
        if strategy == "llm" and not prompt:
            prompt = RANK_TEMPLATE.format(timeframe=timeframe)
        elif strategy == "score" and prompt:
            notice = UNUSED_PROMPT_NOTICE if self.llm_configured else NO_JUDGE_NOTICE
        return self._build(
            kind=kind,
            markets=markets,
            symbols=symbols,
            timeframe=timeframe,
            top_k=top_k,
            strategy=strategy,
            target=target,
            prompt=prompt,
            notice=notice,
        )

    def _build(
        self,
        *,
        kind: str,
        markets: int | None,
        symbols: list[str] | None,
        timeframe: str,
        top_k: int | None,
        strategy: str,
        target: float | None,
        prompt: str,
        notice: str,
    ) -> RankingConfig:
        """The config from checked kind, timeframe, strategy and prompt (the prompt may be a
        template around what the trader typed, so it is not held to the trader's limit)."""
        # What needs no market data is checked before any is fetched (seconds on a live source).
        _, requested = self._requested(markets, symbols)
        self._check_top(top_k, requested)
        target = self._check_target(target)
        closes = self._choose_markets(markets, symbols, timeframe)
        chosen = list(closes)
        if top_k is None:
            top_k = min(self.settings.default_top_k, len(chosen) - 1)
        self._check_top(top_k, len(chosen))
        return RankingConfig(
            kind=kind,
            markets=chosen,
            candles_to=max(closes.values()),
            timeframe=timeframe,
            strategy=strategy,
            top_k=top_k,
            target_confidence=round(float(target), 4),
            prompt=prompt,
            notice=notice,
            data_source=self.data_source,
            demo=self.provider.is_demo,
            window=self.settings.window_candles,
            batch_size=(
                self.settings.llm_batch_size if strategy == "llm" else self.settings.score_batch_size
            ),
            views=self.settings.score_views,
            list_size=min(self.settings.llm_list_size, len(chosen)) if strategy == "llm" else 2,
        )

    def create_entry_config(
        self,
        prompt: str,
        *,
        symbols: list[str] | None = None,
        markets: int | None = None,
        timeframe: str = "1h",
        top_k: int | None = None,
        target: float | None = None,
    ) -> RankingConfig:
        """Best long entries: the llm strategy when a judge is configured, else `score` (and the
        config's notice says the question was not used)."""
        return self._templated(
            "entry",
            ENTRY_TEMPLATE,
            prompt,
            markets=markets,
            symbols=symbols,
            timeframe=timeframe,
            top_k=top_k,
            target=target,
        )

    def create_exit_config(
        self,
        symbols: list[str],
        prompt: str = "",
        *,
        timeframe: str = "1h",
        top_k: int | None = None,
        target: float | None = None,
    ) -> RankingConfig:
        """Which holdings to exit first; the trader names the holdings."""
        if not symbols:
            raise InvalidConfig("name the markets you hold, e.g. /exit BTC/USDT,ETH/USDT")
        top_k = top_k if top_k is not None else max(1, min(3, len(symbols) - 1))
        return self._templated(
            "exit",
            EXIT_TEMPLATE,
            prompt,
            markets=None,
            symbols=symbols,
            timeframe=timeframe,
            top_k=top_k,
            target=target,
        )

    def _templated(self, kind: str, template: str, prompt: str, **choice) -> RankingConfig:
        """An entry or exit config: the trader's note (checked, limit included) inside the
        kind's question; without a judge the indicators rank and the notice says so."""
        note = check_prompt(prompt, self.settings.max_prompt_chars) or "none"
        timeframe = self._check_timeframe(choice.pop("timeframe"))
        strategy = "llm" if self.llm_configured else "score"
        return self._build(
            kind=kind,
            timeframe=timeframe,
            strategy=strategy,
            prompt=template.format(timeframe=timeframe, prompt=note),
            notice="" if self.llm_configured else NO_JUDGE_NOTICE,
            **choice,
        )

    # --- checks -----------------------------------------------------------------------------
    def _check_top(self, top_k: int | None, markets: int) -> None:
        if top_k is None:
            return
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise InvalidConfig(f"top must be a whole number of at least 1, not {quoted(top_k)}")
        if top_k > markets:
            raise InvalidConfig(f"top {top_k} is larger than the {markets} markets to rank")

    def _check_target(self, target: float | None) -> float:
        target = self.settings.default_target if target is None else target
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.5 <= target <= 0.99:
            raise InvalidConfig(f"target must be a confidence between 0.5 and 0.99, not {quoted(target)}")
        return target

    def _check_timeframe(self, timeframe: str) -> str:
        if not isinstance(timeframe, str) or timeframe not in TIMEFRAMES:
            raise InvalidConfig(f"unknown timeframe {quoted(timeframe)}: use one of {', '.join(TIMEFRAMES)}")
        return timeframe

    def _check_strategy(self, strategy: str) -> str:
        if strategy not in PUBLIC_STRATEGIES:
            raise InvalidConfig(f"unknown strategy {quoted(strategy)}: use {' or '.join(PUBLIC_STRATEGIES)}")
        if strategy == "llm" and not self.llm_configured:
            raise InvalidConfig(
                "the llm strategy needs an LLM: set OPENAI_API_KEY (or "
                "OPENAI_BASE_URL for a self-hosted server); score works without one"
            )
        return strategy

    def choice_words(
        self,
        *,
        markets: int | None = None,
        symbols: list[str] | None = None,
        timeframe: str = "1h",
        strategy: str | None = None,
        prompt: str = "",
        top_k: int | None = None,
        target: float | None = None,
        **_: object,
    ) -> str | None:
        """What to tell a trader at once while the markets of a request are chosen and their
        candles checked, when that takes a remote source's requests (seconds with a cold cache):
        "Choosing the 100 most-traded markets on binance…". None for a local source, and for a
        request that will be refused at once (bad options), so the refusal comes alone.
        Accepts `create_ranking_config`'s options; checks, writes and fetches nothing."""
        if not self.provider.remote:
            return None
        try:
            self._check_timeframe(timeframe)
            if strategy is not None:
                self._check_strategy(strategy)
            check_prompt(prompt, self.settings.max_prompt_chars)
            named, count = self._requested(markets, symbols)
            self._check_top(top_k, count)
            self._check_target(target)
        except InvalidConfig:
            return None
        where = self.provider.label
        if named is not None:
            return f"Checking the candles of {count} markets on {where}…"
        return f"Choosing the {count} most-traded markets on {where}…"

    def _requested(self, markets: int | None, symbols: list[str] | None) -> tuple[list[str] | None, int]:
        """The named symbols (normalized) or None, and how many markets: the checks that need
        no market data."""
        if markets is not None and symbols is not None:
            raise InvalidConfig("give either a number of markets or a list of symbols, not both")
        limit = self.settings.max_markets
        if symbols is not None:
            if not isinstance(symbols, (list, tuple)) or not all(isinstance(s, str) for s in symbols):
                raise InvalidConfig("symbols must be a list of market symbols like BTC/USDT")
            quote = self.settings.quote_currency
            chosen = list(dict.fromkeys(normalize_symbol(s, quote) for s in symbols if s.strip()))
            if len(chosen) < 2:
                raise InvalidConfig("name at least two markets to rank")
            if len(chosen) > limit:
                raise InvalidConfig(f"{len(chosen)} markets is too many; the limit is {limit}")
            return chosen, len(chosen)
        count = self.settings.default_markets if markets is None else markets
        if not isinstance(count, int) or isinstance(count, bool) or count < 2:
            raise InvalidConfig(f"markets must be a whole number of at least 2, not {quoted(count)}")
        if count > limit:
            raise InvalidConfig(f"{count} markets is too many; the limit is {limit}")
        return None, count

    def _choose_markets(
        self, markets: int | None, symbols: list[str] | None, timeframe: str
    ) -> dict[str, int]:
        """The markets to rank -> when their newest candle closed; or InvalidConfig saying why."""
        chosen, count = self._requested(markets, symbols)
        if chosen is not None:
            self.provider.check_symbols(chosen)
            closes = {}
            for symbol in chosen:
                problem, closes[symbol] = self._check_window(symbol, timeframe)
                if problem:
                    raise InvalidConfig(f"{problem} in {self.data_source}")
            return closes
        available = self._pick(timeframe, count)
        if markets is None:
            count = min(count, len(available))
        if count > len(available):
            raise InvalidConfig(
                f"only {len(available)} markets have enough {timeframe} candles "
                f"in {self.data_source}; asked for {count}"
            )
        return available


def _without(options: dict[str, Any], *names: str) -> dict[str, Any]:
    given = [n for n in names if n in options]
    if given:
        raise InvalidConfig(f"{given[0]} cannot be chosen for this kind of analysis")
    return options
