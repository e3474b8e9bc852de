"""What the API's views need: the process resources plus a Celery client for enqueueing by name."""

from __future__ import annotations

from typing import Any

from flask import current_app

from constellate.catalogue import Live, NameCache
from constellate.resources import Resources

RECLUSTER_TASK = "constellate.recluster"  # enqueued by name: the API never imports the worker


class Services(Resources):
    """Store, query embedder and Redis (lazy, shared by all requests) and the enqueueing client."""

    _celery: Any = None
    _names: NameCache | None = None

    def live(self) -> Live:
        """The live run and its cluster names (cached per run and edit)."""
        with self._lock:
            if self._names is None:
                self._names = NameCache()
        return self._names.live(self.store)

    def enqueue_recluster(self, full: bool = False) -> str:
        """Send the recluster task by name (``full``: a full run); returns the task id."""
        with self._lock:
            if self._celery is None:
                from celery import Celery

                # not the current app: in `up` that is the worker's, which owns the tasks
                self._celery = Celery(
                    "constellate-api", broker=self.redis_url, backend=self.redis_url, set_as_current=False
                )
        return str(self._celery.send_task(RECLUSTER_TASK, kwargs={"full": True} if full else None).id)


def services() -> Services:
    """The app's services (inside a request)."""
    return current_app.extensions["constellate"]
