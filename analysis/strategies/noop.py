"""A strategy that does nothing for `noop_steps` steps: measures the step protocol's own cost
(`make bench`) and drives protocol tests with many cheap steps."""

from analysis.models import RankingConfig, StepOutcome
from analysis.strategies.base import StepInput


class NoopStrategy:
    name = "noop"

    def initial_state(self, config: RankingConfig, markets: list[str]) -> dict:
        return {"done_steps": 0}

    def step(self, inp: StepInput) -> StepOutcome:
        done_steps = inp.state["done_steps"] + 1
        total = max(inp.config.noop_steps, 1)
        done = done_steps >= total
        return StepOutcome(state={"done_steps": done_steps}, progress=done_steps / total,
                           confidence=1.0 if done else 0.0, done=done, result=[])
