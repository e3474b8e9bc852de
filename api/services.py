"""What the API's views need, opened on first use (never at import) and shared by all requests."""

from __future__ import annotations

import threading
from typing import Any

from flask import current_app

from constellate.config import Settings
from constellate.embedding import Embedder
from constellate.store.base import VectorStore

RECLUSTER_TASK = "constellate.recluster"  # enqueued by name: the API never imports the worker


class Services:
    """Store, query embedder, Redis client and a Celery client for enqueueing, made lazily."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore | None = None,
        embedder: Embedder | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._embedder = embedder
        self._redis_url = redis_url
        self._redis: Any = None
        self._celery: Any = None
        self._lock = threading.Lock()

    @property
    def store(self) -> VectorStore:
        with self._lock:
            if self._store is None:
                from constellate.store import open_store

                self._store = open_store(self.settings)
            return self._store

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from constellate.embedding import load_embedder

                s = self.settings
                self._embedder = load_embedder(s.model, s.embed_batch_size, s.device)
            return self._embedder

    @property
    def redis_url(self) -> str:
        if self._redis_url is None:
            from constellate.embedded_redis import redis_url

            self._redis_url = redis_url(self.settings, start=False)
        return self._redis_url

    @property
    def redis(self) -> Any:
        with self._lock:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=2)
            return self._redis

    def enqueue_recluster(self) -> str:
        """Send the recluster task by name; returns the task id."""
        with self._lock:
            if self._celery is None:
                from celery import Celery

                self._celery = Celery("constellate-api", broker=self.redis_url, backend=self.redis_url)
        return str(self._celery.send_task(RECLUSTER_TASK).id)


def services() -> Services:
    """The app's services (inside a request)."""
    return current_app.extensions["constellate"]
