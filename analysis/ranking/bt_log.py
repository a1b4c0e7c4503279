"""The comparison log of the Bradley-Terry model (bradley_terry.py): checked, aggregated per pair."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Comparison:
    """One judged pair: the judge saw `first` then `second` and preferred `winner`."""

    first: str
    second: str
    winner: str
    model: str = ""


@dataclass(frozen=True)
class _Log:
    """The comparison log as index arrays, aggregated per ordered (first, second) pair."""

    first: np.ndarray
    second: np.ndarray
    trials: np.ndarray
    first_wins: np.ndarray


def _check_inputs(symbols: list[str], k: int, samples: int) -> None:
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols must be distinct")
    if not 1 <= k <= len(symbols):
        raise ValueError(f"k must be between 1 and {len(symbols)} (the number of symbols), got {k}")
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")


def _index_log(symbols: list[str] | tuple[str, ...], comparisons) -> _Log:
    """Validate the log against the symbols and aggregate it."""
    position = {s: i for i, s in enumerate(symbols)}
    n = len(symbols)
    codes = np.empty(len(comparisons), dtype=np.int64)
    first_won = np.empty(len(comparisons))
    for row, c in enumerate(comparisons):
        for name in (c.first, c.second):
            if name not in position:
                raise ValueError(f"comparison {c} names {name!r}, which is not among the symbols")
        if c.first == c.second:
            raise ValueError(f"comparison {c} pairs {c.first!r} with itself")
        if c.winner not in (c.first, c.second):
            raise ValueError(f"comparison {c} has winner {c.winner!r}, which is not in the pair")
        codes[row] = position[c.first] * n + position[c.second]
        first_won[row] = c.winner == c.first
    unique, inverse = np.unique(codes, return_inverse=True)
    return _Log(
        first=unique // n,
        second=unique % n,
        trials=np.bincount(inverse, minlength=len(unique)).astype(float),
        first_wins=np.bincount(inverse, weights=first_won, minlength=len(unique)),
    )


def _comparison_counts(log: _Log, n: int) -> np.ndarray:
    """How many comparisons each symbol has taken part in."""
    return np.bincount(log.first, log.trials, n) + np.bincount(log.second, log.trials, n)


def _design(first: np.ndarray, second: np.ndarray, n: int) -> np.ndarray:
    """Rows map the parameters (strengths..., bias) to the logit that `first` wins."""
    rows = np.zeros((len(first), n + 1))
    rows[np.arange(len(first)), first] = 1.0
    rows[np.arange(len(first)), second] = -1.0
    rows[:, n] = 1.0
    return rows
