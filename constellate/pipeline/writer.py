"""Label writes grouped by identical payload, written by the pass (qdrant-edge) or from one thread (a server).

A run's labels repeat: most tickets it writes share a cluster, a flag, a score bucket, its run id.
Each group becomes one engine operation (a qdrant-edge operation costs tens of µs on top of the
per-point work, a server one round trip). Against a server the operations run in a thread, so the
server writes while the pass reads and scores the next page (the thread waits on the network, not
on the GIL); the ids handed over and not yet written are bounded (backpressure in ids, so small
groups do not stall the pass). qdrant-edge takes the GIL back within each call, every few points:
beside a busy thread its writes crawl (on an idle 2-core machine a 4,096-id write took 0.14 s
alone, 5.6 s beside a Python loop; docs/benchmarks.md), so against the embedded engine the pass writes each group itself
(``background=False``). The lease is checked before every operation is handed over and again
before it is written."""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from constellate.run_lock import Lease
from constellate.store.base import VectorStore

log = logging.getLogger(__name__)

GROUP = 4096  # ids per operation
PAGES_HELD = 32  # pages of ids held before the largest groups are written early
PENDING = PAGES_HELD * 2048
# ids handed to the thread and not yet written before the pass waits (backpressure; counted in ids,
# not operations: four small operations in flight kept the pass waiting on nearly every page)
IN_FLIGHT = 4 * GROUP


class GroupedWriter:
    """``add(pid, payload)`` many times, then ``flush()``; use as a context manager."""

    def __init__(
        self,
        store: VectorStore,
        lease: Lease,
        group: int = GROUP,
        pending: int = PENDING,
        background: bool | None = None,
    ) -> None:
        self.store, self.lease = store, lease
        # default: a thread where the store's writes let the pass run beside them
        self.background = getattr(store, "concurrent_writes", True) if background is None else background
        self.group, self.pending = group, pending
        self._groups: dict[tuple[tuple[str, Any], ...], list[str]] = {}
        self._held = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-writer")
        self._futures: deque[tuple[Future[None], int]] = deque()
        self._in_flight = 0
        self.written = 0

    def add(self, pid: str, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for point ``pid`` (written with others carrying the same payload)."""
        self.add_many([pid], payload)

    def add_many(self, pids: list[str], payload: dict[str, Any]) -> None:
        """Queue the same ``payload`` for every point in ``pids``."""
        key = tuple(payload.items())
        ids = self._groups.setdefault(key, [])
        ids.extend(pids)
        self._held += len(pids)
        if len(ids) >= self.group:
            self._submit(key)
        elif self._held > self.pending:
            for big in sorted(self._groups, key=lambda k: -len(self._groups[k]))[
                : max(1, len(self._groups) // 4)
            ]:
                self._submit(big)

    def flush(self) -> None:
        """Write everything queued and wait for it; re-raises the thread's error."""
        for key in list(self._groups):
            self._submit(key)
        while self._futures:
            self._wait_oldest()

    def _submit(self, key: tuple[tuple[str, Any], ...]) -> None:
        queued = self._groups.pop(key)
        self._held -= len(queued)
        for lo in range(0, len(queued), self.group):  # one operation per ``group`` ids
            self._operation(queued[lo : lo + self.group], key)

    def _operation(self, ids: list[str], key: tuple[tuple[str, Any], ...]) -> None:
        while self._futures and self._in_flight + len(ids) > IN_FLIGHT:
            self._wait_oldest()
        self.lease.check()  # never hand over a write for a run that no longer owns the lock
        if not self.background:
            self._write(ids, dict(key), first=not self.written)
            self.written += len(ids)
            return
        future = self._pool.submit(self._write, ids, dict(key), first=not self.written)
        self._futures.append((future, len(ids)))
        self._in_flight += len(ids)
        self.written += len(ids)

    def _wait_oldest(self) -> None:
        future, n = self._futures.popleft()
        self._in_flight -= n
        future.result()

    def _write(self, ids: list[str], payload: dict[str, Any], first: bool) -> None:
        self.lease.check()  # again here: a pass that froze after handing work over writes no more
        self.store.set_payload_ids(ids, payload)
        if first:
            log.info("write: first %d labels written", len(ids))

    def __enter__(self) -> GroupedWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
