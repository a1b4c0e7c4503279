"""What every part of the analysis store shares: the Redis client, the settings, the keys, and
the scripts of `analysis/db/scripts/` (creation, steps, controls, watch) bound to the client,
called with their KEYS and ARGV by name."""

from typing import Any

import redis

from analysis.db.keys import Keys
from analysis.db.script import A, Answer, Script
from analysis.db.scripts import controls, creation, steps, watch
from analysis.settings import Settings


class StoreBase:
    """The client, settings, keys and bound scripts the store's parts (its mixins) use."""

    def __init__(self, client: redis.Redis, settings: Settings):
        self.redis = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._bound = {
            script.name: script.bind(client)
            for script in creation.SCRIPTS + steps.SCRIPTS + controls.SCRIPTS + watch.SCRIPTS
        }

    def _call(self, script: Script[A], **named: Any) -> Answer[A]:
        """Run `script` with its KEYS and ARGV by name; its answer as a member of its enum."""
        return self._bound[script.name](**named)

    def _analysis_keys(self, analysis_id: str) -> dict[str, str]:
        """The keys most scripts take by these names: the analysis's control, gist and lease, and
        the progress events stream."""
        k = self.keys
        return {
            "control": k.control(analysis_id),
            "gist": k.gist(analysis_id),
            "lease": k.lease(analysis_id),
            "events": k.events(),
        }

    def _queue(self, pipe: Any, script: Script[Any], **named: Any) -> None:
        """Queue `script` on a pipeline; `script.answer(raw)` reads its result after execute."""
        self._bound[script.name].queue(pipe, **named)
