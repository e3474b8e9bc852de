"""Re-indexing off the run's path: the embedded engine's ``optimize()`` in one background thread.

A run asks for it after its switch and does not wait; a request while one is running is folded into
a single follow-up pass, so runs never start a second one. (A Qdrant server optimises by itself;
its adapter's ``optimize()`` does nothing.) qdrant-edge-py holds the GIL during ``optimize()``, so
in one process (``constellate up``) the optimisation pauses the other threads while it runs; its
length is measured and logged (docs/benchmarks.md), and it is proportional to what runs and
ingestion changed since the last one, not to the history.
"""

from __future__ import annotations

import logging
import threading
import time

from constellate.store.base import VectorStore

log = logging.getLogger(__name__)


class BackgroundOptimizer:
    """Single-flight background ``store.optimize()``."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False
        self.runs = 0
        self.last_seconds: float | None = None

    def request(self) -> bool:
        """Optimise soon, in the background; returns False if one is running (it will run once more)."""
        with self._lock:
            if self._thread is not None:
                self._again = True
                return False
            self._thread = threading.Thread(target=self._loop, name="store-optimize", daemon=True)
            self._thread.start()
            return True

    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running optimisation (a CLI about to exit); True when none is left."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running()

    def _loop(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                self.store.optimize()
            except Exception:  # a closed store at shutdown, or an engine error: the next run asks again
                log.exception("background optimize failed")
            self.last_seconds = time.perf_counter() - started
            self.runs += 1
            log.info("store optimized in %.1f s", self.last_seconds)
            with self._lock:
                if not self._again:
                    self._thread = None  # under the lock: a request from now on starts a new thread
                    return
                self._again = False
