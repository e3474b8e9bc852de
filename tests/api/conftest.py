"""Flask app fixtures: a real embedded store with two reclustered topics sets, a real Valkey."""

from __future__ import annotations

import pytest

from api import create_app
from constellate.config import Settings
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from tests.topics import topic_data


@pytest.fixture
def api_store(tmp_path, hash_embedder):
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=20, max_text_chars=200, max_batch=5)
    store = edge_store(settings)
    store.ensure_collections(32)
    tickets, vectors, _ = topic_data(4, 40)
    store.upsert_tickets(tickets, vectors)
    recluster(store, settings, namer=KeyBERTNamer(hash_embedder))
    yield store, settings
    store.close()


@pytest.fixture
def app(api_store, hash_embedder, redis_url):
    store, settings = api_store
    return create_app(settings, store=store, embedder=hash_embedder, redis_url=redis_url)


@pytest.fixture
def client(app):
    return app.test_client()
