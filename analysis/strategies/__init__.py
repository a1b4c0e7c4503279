"""Ranking strategies by name."""

from analysis.strategies.base import Strategy


def get_strategy(name: str) -> Strategy:
    if name == "score":
        from analysis.strategies.score import ScoreStrategy
        return ScoreStrategy()
    if name == "noop":
        from analysis.strategies.noop import NoopStrategy
        return NoopStrategy()
    if name == "llm":
        from analysis.strategies.llm import LLMStrategy
        return LLMStrategy()
    raise ValueError(f"unknown strategy {name!r}")
