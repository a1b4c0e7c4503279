"""Ranking strategies by name: `score` and `llm` built in; others register with
`register_strategy` (tests and benchmarks register their doubles, production never imports them).

A config's strategy is `<name>` or `<name>:<argument>`; the built-in strategies take no argument.
"""

from collections.abc import Callable

from analysis.ranking.strategies.base import Strategy

_FACTORIES: dict[str, Callable[[str], Strategy]] = {}


def register_strategy(name: str, factory: Callable[[str], Strategy]) -> None:
    """`factory(argument)` builds the strategy for `<name>` ('' as argument) or `<name>:<argument>`."""
    _FACTORIES[name] = factory


def strategy_names() -> list[str]:
    return sorted(_FACTORIES)


def get_strategy(spec: str) -> Strategy:
    name, _, argument = spec.partition(":")
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown strategy {spec!r}: use one of {', '.join(strategy_names())}")
    return factory(argument)


def _no_argument(name: str, build: Callable[[], Strategy]) -> Callable[[str], Strategy]:
    def factory(argument: str) -> Strategy:
        if argument:
            raise ValueError(f"strategy {name!r} takes no argument, not {argument!r}")
        return build()

    return factory


def _score() -> Strategy:
    from analysis.ranking.strategies.score import ScoreStrategy

    return ScoreStrategy()


def _llm() -> Strategy:
    from analysis.ranking.strategies.llm import LLMStrategy

    return LLMStrategy()


register_strategy("score", _no_argument("score", _score))
register_strategy("llm", _no_argument("llm", _llm))
