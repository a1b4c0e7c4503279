"""What admins are told, and how often: at most one alert per cause per ALERT_THROTTLE_S, and a
health alert only when the level changes (to warning or critical, and back to healthy).

State lives in Redis (`{p}alert:{cause}` throttles, `{p}health:level` the level last told), so a
restarted bot neither repeats an alert nor misses a recovery. Async (the bot's client).
"""

from __future__ import annotations

from collections.abc import Callable

from analysis.db.keys import Keys
from analysis.db.scripts.alerts import ALERT_FIRST, HEALTH_LEVEL_SWAP, AlertFirst
from analysis.health import Health


class AlertBook:
    def __init__(self, client, keys: Keys, throttle_s: int):
        self.client, self.keys, self.throttle_s = client, keys, throttle_s
        # Lua that may write at Redis's memory limit: a full Redis is what admins must hear of.
        self._first, self._swap_level = ALERT_FIRST.bind(client), HEALTH_LEVEL_SWAP.bind(client)

    async def first(self, cause: str) -> bool:
        """True the first time `cause` is raised within the throttle window."""
        answer = await self._first.call_async(alert=self.keys.alert(cause), throttle_s=self.throttle_s)
        return answer.code == AlertFirst.FIRST

    async def count_sent(self) -> None:
        """The Prometheus counter of alerts sent (analysis/metrics.py)."""
        await self.client.hincrby(self.keys.metrics(), "alerts_sent", 1)

    async def health_alert(self, health: Health) -> tuple[str, str] | None:
        """(cause, text) when the level changed since the last reading worth telling; the first
        reading ever, if healthy, is only remembered."""
        swapped = await self._swap_level.call_async(health_level=self.keys.health_level(), level=health.level)
        previous = swapped.values[0] if swapped.values else None
        if previous == health.level or (previous is None and health.level == "healthy"):
            return None
        if health.level == "healthy":
            return "health:recovered", f"marketrank health: recovered (was {previous})."
        causes = ",".join(sorted({r.cause for r in health.reasons}))
        reasons = "\n".join(f"- {r.level}: {r.text}" for r in health.reasons)
        return f"health:{health.level}:{causes}", f"marketrank health: {health.level}\n{reasons}"


def stuck_alert_text(analysis_id: str, reason: str) -> str:
    return (
        f"Analysis {analysis_id} was given up as stuck ({reason or 'no progress'}). "
        f"/force_resume {analysis_id} restarts it from its last step; /stuck lists the others."
    )


def storage_full_alert_text(analysis_id: str, reason: str) -> str:
    return (
        f"Analysis {analysis_id} paused: Redis is full (it refused a step's write at its "
        f"memory limit). Free memory in Redis or raise its maxmemory, then /force_resume "
        f"{analysis_id} (or its owner presses Resume); /failures lists the others."
    )


# The events of analyses admins are told about (the kind the Lua scripts announce) -> the text.
ADMIN_ALERT_TEXTS: dict[str, Callable[[str, str], str]] = {
    "stuck": stuck_alert_text,
    "storage_full": storage_full_alert_text,
}
