"""The `noop:<steps>` strategy: does nothing for <steps> steps. Measures the step protocol's own
cost (`make bench`) and drives protocol tests with many cheap steps. `register()` makes it a
strategy name in the process that calls it (tests, test and bench workers); production never does."""

from analysis.models import RankingConfig, StepOutcome
from analysis.ranking.strategies import register_strategy
from analysis.ranking.strategies.base import StepInput


class NoopStrategy:
    name = "noop"

    def __init__(self, steps: int):
        self.steps = max(steps, 1)

    def initial_state(self, config: RankingConfig, markets: list[str]) -> dict[str, int]:
        return {"done_steps": 0}

    def step(self, inp: StepInput) -> StepOutcome:
        done_steps = inp.state["done_steps"] + 1
        done = done_steps >= self.steps
        return StepOutcome(
            state={"done_steps": done_steps},
            progress=done_steps / self.steps,
            confidence=1.0 if done else 0.0,
            done=done,
            result=[],
        )


def noop_strategy(argument: str) -> NoopStrategy:
    if not argument.isdigit():
        raise ValueError(f"the noop strategy is written noop:<steps>, not noop:{argument!r}")
    return NoopStrategy(int(argument))


def register() -> None:
    register_strategy("noop", noop_strategy)
