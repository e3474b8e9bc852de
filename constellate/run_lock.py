"""A Redis lock so two recluster runs never overlap.

The lock is a short lease that a heartbeat thread renews while the run is alive: a worker that
dies (SIGKILL, lost machine) stops renewing, so the next trigger can run within one lease instead
of waiting out the longest possible run.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from constellate.recluster import new_run_id

log = logging.getLogger(__name__)

LOCK_KEY = "constellate:recluster:lock"

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RunLock:
    """Non-blocking lock holding the id of the run that owns it, as a renewable lease."""

    def __init__(self, client: Any, timeout: int, key: str = LOCK_KEY) -> None:
        self.client = client
        self.timeout = timeout
        self.key = key
        self.run_id = new_run_id()
        self._held = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lock if free; False when another run has it."""
        self._held = bool(self.client.set(self.key, self.run_id, nx=True, ex=self.timeout))
        return self._held

    def holder(self) -> str | None:
        """The run id holding the lock now, if any."""
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def renew(self) -> bool:
        """Extend the lease by ``timeout`` if this run still holds it."""
        return bool(self.client.eval(_RENEW, 1, self.key, self.run_id, int(self.timeout * 1000)))

    def keep_alive(self) -> None:
        """Renew the lease every third of ``timeout`` from a daemon thread until :meth:`release`."""
        if self._heartbeat is not None:
            return

        def beat() -> None:
            while not self._stop.wait(self.timeout / 3):
                try:
                    if not self.renew():
                        log.warning("run %s lost the recluster lock", self.run_id)
                        return
                except Exception as exc:  # Redis down for a moment: try again next beat
                    log.warning("could not renew the recluster lock: %s", exc)

        self._heartbeat = threading.Thread(target=beat, name=f"lock-{self.run_id}", daemon=True)
        self._heartbeat.start()

    def release(self) -> None:
        """Stop the heartbeat and free the lock if this run still holds it (compare-and-delete)."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None
        if self._held:
            self.client.eval(_RELEASE, 1, self.key, self.run_id)
            self._held = False
