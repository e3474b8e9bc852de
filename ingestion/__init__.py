"""The ingestion shell: run the stream consumer with the store, embedder and assigner it is given."""

from __future__ import annotations

import socket
import threading
from typing import Any

from constellate.assign import CentroidAssigner
from constellate.config import Settings
from constellate.embedding import Embedder
from constellate.store.base import VectorStore
from constellate.stream import ConsumerConfig, StreamConsumer


def make_consumer(
    settings: Settings, client: Any, store: VectorStore, embedder: Embedder, name: str | None = None
) -> StreamConsumer:
    """A consumer-group member labelling each ticket at once against the live clusters."""
    config = ConsumerConfig(
        batch_size=settings.ingest_batch_size,
        block_ms=settings.ingest_block_ms,
        claim_idle_ms=settings.ingest_claim_idle_ms,
        max_deliveries=settings.ingest_max_deliveries,
        max_text_chars=settings.max_text_chars,
        dead_letter_max_len=settings.ingest_dead_letter_max_len,
    )
    store.ensure_collections(embedder.dim)
    consumer_name = name or f"{socket.gethostname()}-{threading.get_native_id()}"
    return StreamConsumer(client, store, embedder, CentroidAssigner(store), consumer_name, config)


def run(consumer: StreamConsumer, stop: threading.Event) -> threading.Thread:
    """Start the consumer loop in a thread; set ``stop`` to end it after the current batch."""
    thread = threading.Thread(target=consumer.run, args=(stop,), name="ingestion", daemon=True)
    thread.start()
    return thread
