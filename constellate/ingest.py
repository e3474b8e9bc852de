"""Direct ingestion: embed tickets in batches and upsert them (the CLI path and the stream consumer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from constellate.embedding import Embedder
from constellate.labels import NOT_OUTLIER
from constellate.store.base import VectorStore
from constellate.tickets import Ticket, point_id, version_now

RELABEL_TRIES = 5


class Labeller(Protocol):
    """Labels fresh vectors against the current clusters."""

    def label(
        self, vectors: np.ndarray, cleared: np.ndarray | None = None
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """The run labelled against, and payload fields per vector (``cleared``: never an outlier)."""
        ...

    def is_current(self, run: str | None) -> bool:
        """Whether ``run`` is still the live run."""
        ...


def ingest_tickets(
    tickets: Sequence[Ticket],
    store: VectorStore,
    embedder: Embedder,
    chunk_size: int = 512,
    labeller: Labeller | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embed and upsert ``tickets`` chunk by chunk; returns how many were stored.

    The store's collections are created on first use. Tickets are processed shortest text first:
    the encoder pads each batch to its longest text, so chunks of similar length encode as fast as
    one big call (measured: chunks of 512 in file order cost 26 % more than one encode call). Each
    chunk is written before the next is embedded, so an interrupted ingest keeps what it finished.

    A ticket stored before keeps what a human said about it (its outlier override). If a run
    switched between labelling a chunk and storing it, the chunk is labelled again against the new
    run: either the run's after-switch pass sees the stored tickets, or this check sees the switch.
    """
    if not tickets:
        return 0
    store.ensure_collections(embedder.dim)
    now = version_now()  # one version for the call's tickets that came without one
    ordered = sorted(
        (t if t.version is not None else replace(t, version=now) for t in tickets), key=lambda t: len(t.text)
    )
    stored = 0
    for start in range(0, len(ordered), chunk_size):
        chunk = ordered[start : start + chunk_size]
        vectors = embedder.embed([t.text for t in chunk])
        if labeller is None:
            store.upsert_tickets(chunk, vectors)
        else:
            ids = [point_id(t.id) for t in chunk]
            kept = {
                r.id
                for r in store.get_points(ids, fields=[NOT_OUTLIER])
                if r.payload.get(NOT_OUTLIER) == "no"
            }
            cleared = np.array([pid in kept for pid in ids], dtype=bool)
            run, extra = labeller.label(vectors, cleared)
            store.upsert_tickets(chunk, vectors, extra)
            for _ in range(RELABEL_TRIES):
                if labeller.is_current(run):
                    break
                run, extra = labeller.label(vectors, cleared)
                # only onto the text these vectors are of (a newer version may have replaced it)
                store.set_payloads_at_version(
                    [(pid, int(t.version), e) for pid, t, e in zip(ids, chunk, extra, strict=True)]
                )
        stored += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return stored
