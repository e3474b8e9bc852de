"""Vector stores: the protocol, and the factory that picks embedded qdrant-edge or a Qdrant server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from constellate.store.base import (
    DateRange,
    Filter,
    IsEmpty,
    Match,
    MatchAny,
    Range,
    Record,
    VectorPage,
    VectorStore,
)
from constellate.store.store import QdrantStore

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from constellate.config import Settings

__all__ = [
    "DateRange",
    "Filter",
    "IsEmpty",
    "Match",
    "MatchAny",
    "QdrantStore",
    "Range",
    "Record",
    "VectorPage",
    "VectorStore",
    "client_store",
    "edge_store",
    "open_store",
]


def edge_store(settings: Settings) -> QdrantStore:
    """The embedded store: qdrant-edge shards under ``settings.embedded_store_path``."""
    from constellate.store.edge import EdgeCollection

    root = settings.embedded_store_path
    return QdrantStore(
        EdgeCollection(root / settings.tickets_collection),
        EdgeCollection(root / settings.clusters_collection),
        EdgeCollection(root / settings.runs_collection),
        EdgeCollection(root / settings.map_collection),
        write_batch=settings.upsert_batch_size,
    )


def client_store(client: QdrantClient, settings: Settings) -> QdrantStore:
    """A store over an existing qdrant-client (a server, or ``QdrantClient(":memory:")`` in tests)."""
    from constellate.store.qdrant import ClientCollection

    batch = settings.upsert_batch_size
    return QdrantStore(
        ClientCollection(
            client, settings.tickets_collection, batch, settings.qdrant_shards, settings.qdrant_replication
        ),
        ClientCollection(client, settings.clusters_collection, batch),
        ClientCollection(client, settings.runs_collection, batch),
        ClientCollection(client, settings.map_collection, batch),
        write_batch=batch,
        on_close=client.close,
    )


def open_store(settings: Settings) -> QdrantStore:
    """Open the store the settings point at: a Qdrant server if ``qdrant_url`` is set, else embedded."""
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return client_store(QdrantClient(url=settings.qdrant_url, api_key=api_key), settings)
    return edge_store(settings)
