"""What a benchmark asks of the per-user limits, declared beside it, so a test can hold every
`make bench*` and `make chaos` target to settings that let it finish (#19 item 14: the tap
benchmark's traders outgrew MAX_STARTS_PER_HOUR when the quota landed after it).

Each benchmark module that `Makefile` runs has `PER_USER`: a `PerUser`, or None when it starts no
analysis through the service; and `BENCH_ENV`, the settings it runs with besides the defaults.
"""

from dataclasses import dataclass

from analysis.settings import Settings


@dataclass(frozen=True)
class PerUser:
    """The most one user of the benchmark asks: analyses started or restarted by a refine within
    an hour (MAX_STARTS_PER_HOUR), and analyses not yet final at once (MAX_ACTIVE_PER_USER)."""

    starts_per_hour: int
    active: int

    def shortfalls(self, settings: Settings) -> list[str]:
        """The limits `settings` set below what this benchmark asks; empty when it fits."""
        found = []
        if settings.max_starts_per_hour < self.starts_per_hour:
            found.append(
                f"MAX_STARTS_PER_HOUR={settings.max_starts_per_hour} < {self.starts_per_hour} "
                f"starts a user makes"
            )
        if settings.max_active_per_user < self.active:
            found.append(
                f"MAX_ACTIVE_PER_USER={settings.max_active_per_user} < {self.active} "
                f"analyses a user runs at once"
            )
        return found
