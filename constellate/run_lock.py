"""A Redis lock so two recluster runs never overlap (a timeout frees it if the holder dies)."""

from __future__ import annotations

from typing import Any

from constellate.recluster import new_run_id

LOCK_KEY = "constellate:recluster:lock"


class RunLock:
    """Non-blocking lock holding the id of the run that owns it."""

    def __init__(self, client: Any, timeout: int, key: str = LOCK_KEY) -> None:
        self.client = client
        self.timeout = timeout
        self.key = key
        self.run_id = new_run_id()
        self._held = False

    def acquire(self) -> bool:
        """Take the lock if free; False when another run has it."""
        self._held = bool(self.client.set(self.key, self.run_id, nx=True, ex=self.timeout))
        return self._held

    def holder(self) -> str | None:
        """The run id holding the lock now, if any."""
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def release(self) -> None:
        """Free the lock if this run still holds it (compare-and-delete)."""
        if self._held:
            self.client.eval(
                "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
                1,
                self.key,
                self.run_id,
            )
            self._held = False
