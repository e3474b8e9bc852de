"""What a long-running process shares: store, embedder, namer and Redis, each opened on first use."""

from __future__ import annotations

import threading
from typing import Any

from constellate.alerts import Notifier
from constellate.config import Settings
from constellate.embedding import Embedder
from constellate.naming import Namer
from constellate.optimizer import BackgroundOptimizer
from constellate.store.base import VectorStore


class Resources:
    """Lazily opened, thread-safe; anything passed in is used as is (e.g. `up`'s one open store)."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore | None = None,
        embedder: Embedder | None = None,
        namer: Namer | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._embedder = embedder
        self._namer = namer
        self._redis_url = redis_url
        self._redis: Any = None
        self._notifier: Notifier | None = None
        self._optimizer: BackgroundOptimizer | None = None
        self._lock = threading.RLock()

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
                from constellate.embedding import embedder_for

                self._embedder = embedder_for(self.settings)
            return self._embedder

    @property
    def namer(self) -> Namer:
        with self._lock:
            if self._namer is None:
                from constellate.naming import namer_for

                self._namer = namer_for(self.embedder, self.settings)
            return self._namer

    @property
    def optimizer(self) -> BackgroundOptimizer:
        """The one background optimiser of this process's store (runs never start a second)."""
        with self._lock:
            if self._optimizer is None:
                self._optimizer = BackgroundOptimizer(self.store)
            return self._optimizer

    @property
    def notifier(self) -> Notifier | None:
        """The alert webhook sender, when ``alert_webhook_url`` is set."""
        with self._lock:
            if self._notifier is None and self.settings.alert_webhook_url:
                from constellate.alerts import WebhookNotifier

                self._notifier = WebhookNotifier(self.settings.alert_webhook_url)
            return self._notifier

    @property
    def redis_url(self) -> str:
        with self._lock:
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
