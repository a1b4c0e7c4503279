"""Keeps the leases of the steps running in this process: one background thread per process and
interval renews them all (docs/architecture.md, "Failures and recovery")."""

import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of the steps running in this process from one background thread.

    One long-lived thread rather than one per step: starting a thread costs about a millisecond
    on a busy machine, which would double the protocol's cost per step.
    """

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._held: dict[tuple[str, str], Callable[[], bool]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextmanager
    def hold(self, analysis_id: str, attempt: str, renew: Callable[[], bool]):
        self._ensure_thread()
        with self._lock:
            self._held[(analysis_id, attempt)] = renew
        try:
            yield
        finally:
            with self._lock:
                self._held.pop((analysis_id, attempt), None)

    def _ensure_thread(self) -> None:
        # After a fork the parent's thread does not exist in the child: start our own.
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._held = {}
            self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            with self._lock:
                held = list(self._held.items())
            for (analysis_id, attempt), renew in held:
                try:
                    if not renew():  # fenced out (force-resume) or expired: the commit will fail
                        logger.warning("[%s] lease of attempt %s was lost", analysis_id, attempt)
                        with self._lock:
                            self._held.pop((analysis_id, attempt), None)
                except Exception:  # a Redis blip: the next beat tries again
                    logger.warning("[%s] lease heartbeat failed", analysis_id, exc_info=True)


_keepers: dict[float, LeaseKeeper] = {}


def lease_keeper(interval_s: float) -> LeaseKeeper:
    if interval_s not in _keepers:
        _keepers[interval_s] = LeaseKeeper(interval_s)
    return _keepers[interval_s]
