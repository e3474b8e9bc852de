"""What the API's views need: the process resources plus a Celery client for enqueueing by name."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from flask import current_app

from constellate.catalogue import Live, NameCache
from constellate.resources import Resources

RECLUSTER_TASK = "constellate.recluster"  # enqueued by name: the API never imports the worker


class AnswerCache:
    """Serialised answers keyed by what they depend on (e.g. the live run, the edit clock and the
    request's parameters), the newest ``size`` kept. One build per key: concurrent requests for a key
    being built wait for it instead of building it again."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self.builds = 0  # how many answers were built (tests read it)

    def get(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                if key in self._entries:  # built while this request waited
                    return self._entries[key]
            try:
                body = build()
            except BaseException:
                with self._lock:
                    self._building.pop(key, None)
                raise
            with self._lock:
                self.builds += 1
                self._entries[key] = body
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
                self._building.pop(key, None)
            return body


class Services(Resources):
    """Store, query embedder and Redis (lazy, shared by all requests) and the enqueueing client."""

    _celery: Any = None
    _names: NameCache | None = None
    _answers: AnswerCache | None = None

    @property
    def answers(self) -> AnswerCache:
        """Answers computed once per live run and edit clock (the map)."""
        with self._lock:
            if self._answers is None:
                self._answers = AnswerCache()
            return self._answers

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
