"""A Redis lock so two recluster runs never overlap, held as a renewable lease.

The lease is short and a heartbeat thread renews it while the run is alive: a worker that dies
(SIGKILL, lost machine) stops renewing, so the next trigger can run within one lease instead of
waiting out the longest possible run. A run checks its lease before every write (:meth:`check`:
local, no round trip — the lease is known valid until its last renewal plus the lease time) and
renews it synchronously before its switch (:meth:`confirm`). The switch itself is fenced in the
store (a compare-and-set on the state's version), so even a run that stalled past its lease cannot
switch over a newer run's claim.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from constellate.exceptions import LeaseLost

log = logging.getLogger(__name__)

LOCK_KEY = "constellate:recluster:lock"

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_REVIVE = (
    "local v = redis.call('get', KEYS[1]) "
    "if v == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end "
    "if not v then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def new_run_id() -> str:
    """A sortable, unique run id."""
    return datetime.now(UTC).strftime("run-%Y%m%dT%H%M%S-") + secrets.token_hex(3)


class Lease(Protocol):
    """What a run needs from its lock: who it is, and whether it may still write."""

    run_id: str

    def check(self) -> None:
        """Raise :class:`LeaseLost` if this run may no longer write."""
        ...

    def confirm(self) -> None:
        """Renew now (before a switch); raise :class:`LeaseLost` if the lock is not ours."""
        ...


class NoLease:
    """For a process that has the store to itself (the CLI on an embedded store it opened: the
    engine's directory lock already excludes every other process)."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id or new_run_id()

    def check(self) -> None:
        return None

    def confirm(self) -> None:
        return None


class RunLock:
    """Non-blocking lock holding the id of the run that owns it, as a renewable lease."""

    def __init__(self, client: Any, timeout: int, key: str = LOCK_KEY, run_id: str | None = None) -> None:
        self.client = client
        self.timeout = timeout
        self.key = key
        self.run_id = run_id or new_run_id()
        self._held = False
        self._lost = False
        self._valid_until = 0.0
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lock if free; False when another run has it."""
        sent = time.monotonic()
        self._held = bool(self.client.set(self.key, self.run_id, nx=True, ex=self.timeout))
        if self._held:
            self._valid_until = sent + self.timeout
        return self._held

    def revive(self) -> bool:
        """Renew the lock if this run holds it, or take it again if nobody does (a task that carries
        on a run after a gap, e.g. a part picked up after its worker died). False if another run
        holds it; the store's claim decides whether this run may still switch."""
        sent = time.monotonic()
        if self.client.eval(_REVIVE, 1, self.key, self.run_id, int(self.timeout * 1000)):
            self._held, self._lost, self._valid_until = True, False, sent + self.timeout
            return True
        return False

    def holder(self) -> str | None:
        """The run id holding the lock now, if any."""
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def renew(self) -> bool:
        """Extend the lease by ``timeout`` if this run still holds it."""
        sent = time.monotonic()
        ok = bool(self.client.eval(_RENEW, 1, self.key, self.run_id, int(self.timeout * 1000)))
        if ok:
            self._valid_until = sent + self.timeout
        else:
            self._lost = True
        return ok

    def check(self) -> None:
        """Raise :class:`LeaseLost` once the lease is known lost or may have run out."""
        if self._lost or time.monotonic() >= self._valid_until:
            raise LeaseLost(f"run {self.run_id} lost the recluster lock")

    def confirm(self) -> None:
        """Renew synchronously; raise :class:`LeaseLost` if the lock is no longer this run's."""
        try:
            ok = self.renew()
        except Exception as exc:  # Redis unreachable: the lease cannot be vouched for
            raise LeaseLost(f"run {self.run_id} could not renew the recluster lock: {exc}") from exc
        if not ok:
            raise LeaseLost(f"run {self.run_id} lost the recluster lock")

    def keep_alive(self) -> None:
        """Renew the lease every third of ``timeout`` from a daemon thread until :meth:`release`."""
        if self._heartbeat is not None:
            return
        self._stop.clear()

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

    def stop_heartbeat(self) -> None:
        """Stop renewing without releasing (the run goes on in other tasks, which revive it)."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None

    def release_if_held(self) -> None:
        """Free the lock if it names this run, whoever took it (compare-and-delete)."""
        self.client.eval(_RELEASE, 1, self.key, self.run_id)

    def release(self) -> None:
        """Stop the heartbeat and free the lock if this run still holds it (compare-and-delete)."""
        self.stop_heartbeat()
        if self._held:
            self.client.eval(_RELEASE, 1, self.key, self.run_id)
            self._held = False
