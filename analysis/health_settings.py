"""The health thresholds (`marketrank health`, /health, admin alerts; docs/operations.md).

A mixin of `Settings`, kept apart so settings.py stays small.
"""

from pydantic import BaseModel, Field, model_validator


class HealthSettings(BaseModel):
    # --- Health thresholds (`marketrank health`, /health, alerts; docs/operations.md) ----------
    health_success_warning: float = Field(0.80, ge=0, le=1)  # step success below: warning
    health_success_critical: float = Field(0.50, ge=0, le=1)  # ... below: critical
    health_min_steps: int = Field(5, ge=1)  # fewer steps: success not judged
    health_queue_age_warning_s: float = Field(300, gt=0)  # oldest queued message older
    health_queue_age_critical_s: float = Field(1800, gt=0)
    health_memory_warning: float = Field(0.80, gt=0, le=1)  # share of Redis maxmemory
    health_memory_critical: float = Field(0.95, gt=0, le=1)
    health_failures_critical: int = Field(5, ge=1)  # judge / data failures an hour

    @model_validator(mode="after")
    def _health_levels_in_order(self) -> "HealthSettings":
        # A critical threshold milder than its warning would skip the warning, or call critical
        # what is only a warning: an inverted pair is a typo, not a choice.
        for warning, critical, worse in (
            ("health_success_warning", "health_success_critical", "below"),
            ("health_queue_age_warning_s", "health_queue_age_critical_s", "above"),
            ("health_memory_warning", "health_memory_critical", "above"),
        ):
            w, c = getattr(self, warning), getattr(self, critical)
            if (c > w) if worse == "below" else (c < w):
                bound = "at most" if worse == "below" else "at least"
                raise ValueError(
                    f"{critical.upper()} ({c}) must be {bound} {warning.upper()} "
                    f"({w}): critical is the worse level"
                )
        return self
