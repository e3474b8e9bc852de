"""The constellate store: tickets, cluster catalogue and run records over three collections."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from constellate.exceptions import StoreError
from constellate.store.base import CLUSTER_INDEXES, TICKET_INDEXES, Filter, Match, Record, VectorPage
from constellate.store.collection import Collection
from constellate.tickets import Ticket, point_id

_META_NAMESPACE = uuid.UUID("0b7e9c1a-52f4-5d3e-8a6b-9c2d4e6f8a0b")
_STATE_ID = str(uuid.uuid5(_META_NAMESPACE, "state"))
_RUN_DIM = 1  # runs and state carry no meaningful vector; Qdrant needs one anyway


def cluster_point_id(run_id: str, cluster_id: int) -> str:
    """Point id of a cluster in the catalogue: one entry per (run, cluster), so a run's catalogue is
    written beside the live one and becomes visible with the run."""
    return str(uuid.uuid5(_META_NAMESPACE, f"cluster:{run_id}:{cluster_id}"))


def run_point_id(run_id: str) -> str:
    """Point id of a run record."""
    return str(uuid.uuid5(_META_NAMESPACE, f"run:{run_id}"))


class QdrantStore:
    """:class:`~constellate.store.base.VectorStore` over any :class:`Collection` backend."""

    def __init__(
        self,
        tickets: Collection,
        clusters: Collection,
        runs: Collection,
        write_batch: int = 512,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.tickets = tickets
        self.clusters = clusters
        self.runs = runs
        self.write_batch = write_batch
        self._on_close = on_close
        self._ensured: int | None = None

    # -- set-up -----------------------------------------------------------------------------------
    def ensure_collections(self, dim: int) -> None:
        """Create the three collections and their payload indexes if missing (idempotent).

        Checked against the engine once per store object: ingestion calls this for every batch.
        """
        if self._ensured == dim:
            return
        self.tickets.create(dim, TICKET_INDEXES)
        self.clusters.create(dim, CLUSTER_INDEXES)
        self.runs.create(_RUN_DIM, {"kind": "keyword"})
        self._ensured = dim

    # -- tickets ----------------------------------------------------------------------------------
    def upsert_tickets(
        self, tickets: Sequence[Ticket], vectors: np.ndarray, extra: Sequence[dict[str, Any]] | None = None
    ) -> list[str]:
        """Insert or replace tickets (point id = UUIDv5 of the ticket id); returns the point ids."""
        if len(tickets) != len(vectors):
            raise ValueError("one vector per ticket")
        if not self.tickets.exists():
            raise StoreError("the store has no tickets collection yet: call ensure_collections first")
        ids = [point_id(t.id) for t in tickets]
        payloads = []
        for i, t in enumerate(tickets):
            payload: dict[str, Any] = {
                "ticket_id": t.id,
                "text": t.text,
                "created_at": t.created_at,
                "metadata": dict(t.metadata),
            }
            if extra is not None:
                payload.update(extra[i])
            payloads.append(payload)
        for start in range(0, len(ids), self.write_batch):
            end = start + self.write_batch
            self.tickets.upsert(ids[start:end], vectors[start:end], payloads[start:end])
        return ids

    def get_ticket(self, ticket_id: str) -> Record | None:
        """The stored ticket with this external id, or None."""
        found = self.tickets.retrieve([point_id(ticket_id)])
        return found[0] if found else None

    def get_points(self, ids: Sequence[str], with_vector: bool = False) -> list[Record]:
        """Ticket points by point id (missing ids are left out)."""
        return self.tickets.retrieve(ids, with_vector=with_vector)

    def iter_vectors(
        self, page_size: int = 2048, fields: Sequence[str] = (), filter: Filter | None = None
    ) -> Iterator[VectorPage]:
        """Every ticket vector, in pages (qdrant-edge needs an explicit scroll limit)."""
        offset: str | None = None
        while True:
            records, offset = self.tickets.scroll(
                filter, limit=page_size, offset=offset, with_vector=True, fields=list(fields)
            )
            if records:
                yield VectorPage(
                    ids=[r.id for r in records],
                    vectors=np.stack([r.vector for r in records]).astype(np.float32),
                    payloads=[r.payload for r in records],
                )
            if offset is None:
                return

    def set_payloads(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Merge payload fields into many ticket points (by point id), in batches."""
        for start in range(0, len(updates), self.write_batch):
            self.tickets.set_payloads(updates[start : start + self.write_batch])

    def search(self, vector: np.ndarray, limit: int = 10, filter: Filter | None = None) -> list[Record]:
        """Nearest tickets by cosine similarity, honouring ``filter``."""
        return self.tickets.query(vector, limit, filter)

    def scroll_tickets(
        self,
        filter: Filter | None = None,
        limit: int = 100,
        offset: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> tuple[list[Record], str | None]:
        """A page of tickets (payload only, or just ``fields``) and the offset of the next page."""
        return self.tickets.scroll(filter, limit=limit, offset=offset, fields=fields)

    def count(self, filter: Filter | None = None) -> int:
        """Exact number of tickets matching ``filter``."""
        return self.tickets.count(filter)

    def facet(self, key: str, filter: Filter | None = None, limit: int = 10_000) -> dict[Any, int]:
        """Ticket counts per value of an indexed payload field."""
        return self.tickets.facet(key, filter, limit)

    # -- cluster catalogue ------------------------------------------------------------------------
    def upsert_clusters(self, run_id: str, clusters: Sequence[dict[str, Any]], centroids: np.ndarray) -> None:
        """Write a run's catalogue entries (each with an int ``cluster_id``); vector = centroid."""
        ids = [cluster_point_id(run_id, int(c["cluster_id"])) for c in clusters]
        payloads = [{**c, "run_id": run_id} for c in clusters]
        for start in range(0, len(ids), self.write_batch):
            end = start + self.write_batch
            self.clusters.upsert(ids[start:end], centroids[start:end], payloads[start:end])

    def list_clusters(self, run_id: str | None, with_vector: bool = False) -> list[Record]:
        """A run's catalogue ordered by cluster id (empty for ``None``: no run yet)."""
        if run_id is None:
            return []
        out = _scroll_all(self.clusters, Filter(must=(Match("run_id", run_id),)), with_vector=with_vector)
        return sorted(out, key=lambda r: int(r.payload.get("cluster_id", 0)))

    def get_cluster(self, run_id: str | None, cluster_id: int) -> Record | None:
        """One catalogue entry of a run, or None."""
        if run_id is None:
            return None
        found = self.clusters.retrieve([cluster_point_id(run_id, cluster_id)], with_vector=True)
        return found[0] if found else None

    def delete_cluster(self, run_id: str, cluster_id: int) -> None:
        """Remove one catalogue entry of a run (a human merge folded it into another)."""
        self.clusters.delete([cluster_point_id(run_id, cluster_id)])

    def prune_clusters(self, keep_run_id: str) -> int:
        """Delete catalogue entries of every run but ``keep_run_id``; returns how many went."""
        flt = Filter(must_not=(Match("run_id", keep_run_id),))
        stale = [r.id for r in _scroll_all(self.clusters, flt, fields=["run_id"])]
        self.clusters.delete(stale)
        return len(stale)

    # -- runs and state ---------------------------------------------------------------------------
    def save_run(self, run: dict[str, Any]) -> None:
        """Insert or replace a run record (needs ``run_id``)."""
        payload = {**run, "kind": "run"}
        self.runs.upsert([run_point_id(str(run["run_id"]))], np.ones((1, _RUN_DIM)), [payload])

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run record, or None."""
        found = self.runs.retrieve([run_point_id(run_id)])
        return _strip_kind(found[0].payload) if found else None

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Run records, newest first."""
        runs = [_strip_kind(r.payload) for r in _scroll_all(self.runs, Filter(must=(Match("kind", "run"),)))]
        runs.sort(key=lambda r: str(r.get("started_at", "")), reverse=True)
        return runs[:limit]

    def save_record(self, kind: str, record_id: str, record: dict[str, Any]) -> None:
        """Insert or replace a small record of ``kind`` (``edit``, ``alert``) beside the runs."""
        self.runs.upsert([_record_point(kind, record_id)], np.ones((1, _RUN_DIM)), [{**record, "kind": kind}])

    def get_record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        """One record by kind and id (a point lookup), or None."""
        found = self.runs.retrieve([_record_point(kind, record_id)])
        return _strip_kind(found[0].payload) if found else None

    def list_records(self, kind: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Records of ``kind``, newest ``created_at`` first."""
        found = [_strip_kind(r.payload) for r in _scroll_all(self.runs, Filter(must=(Match("kind", kind),)))]
        found.sort(key=lambda r: str(r.get("created_at", "")), reverse=True)
        return found[:limit]

    def get_state(self) -> dict[str, Any]:
        """Service state (e.g. the current run pointer); empty before the first run."""
        found = self.runs.retrieve([_STATE_ID])
        return _strip_kind(found[0].payload) if found else {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Replace the service state in one write (this is the atomic switch of the current run)."""
        self.runs.upsert([_STATE_ID], np.ones((1, _RUN_DIM)), [{**state, "kind": "state"}])

    # -- lifecycle --------------------------------------------------------------------------------
    def optimize(self) -> None:
        """Fold fresh and relabelled points back into the search index (embedded engine only)."""
        self.tickets.optimize()
        self.clusters.optimize()

    def close(self) -> None:
        """Flush and release the collections."""
        for collection in (self.tickets, self.clusters, self.runs):
            collection.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scroll_all(
    collection: Collection, flt: Filter | None, with_vector: bool = False, fields: Sequence[str] | None = None
) -> list[Record]:
    """Every point matching ``flt``, paging through the collection."""
    out: list[Record] = []
    offset: str | None = None
    while True:
        records, offset = collection.scroll(
            flt, limit=1024, offset=offset, with_vector=with_vector, fields=fields
        )
        out.extend(records)
        if offset is None:
            return out


def _record_point(kind: str, record_id: str) -> str:
    return str(uuid.uuid5(_META_NAMESPACE, f"{kind}:{record_id}"))


def _strip_kind(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "kind"}
