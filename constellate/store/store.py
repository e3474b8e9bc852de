"""The constellate store: tickets, cluster catalogue, map sample and run records over four collections."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from constellate.exceptions import StoreError
from constellate.store.base import (
    CLUSTER_INDEXES,
    MAP_INDEXES,
    RECORD_INDEXES,
    RETIRED_INDEXES,
    TICKET_INDEXES,
    DateRange,
    Filter,
    Match,
    Range,
    Record,
    VectorPage,
)
from constellate.store.collection import Collection, PointUpdate
from constellate.store.migrate import rank_flagged
from constellate.tickets import Ticket, point_id, version_now

_META_NAMESPACE = uuid.UUID("0b7e9c1a-52f4-5d3e-8a6b-9c2d4e6f8a0b")
_STATE_ID = str(uuid.uuid5(_META_NAMESPACE, "state"))
_RUN_DIM = 1  # runs, state and map points carry no meaningful vector; Qdrant needs one anyway
_ONE = np.ones((1, _RUN_DIM), dtype=np.float32)
TICKET_FIELDS = ("ticket_id", "text", "created_at", "metadata")
MAX_HITS = 262_144  # ids per exact search answer (a server's response stays a few MB)
_GUESSED = {f"{slot}_assigned_by": "ingest" for slot in ("a", "b")}  # see constellate.labels
VERSION = "ingest_version"  # payload field: the version of the ticket's text and vector
WRITE = "ingest_write"  # payload field: a token of the write that stored them (ties of versions)


def _newer(stored: int | None, version: int) -> bool:
    """Whether a stored version is newer than ``version`` (None: stored before versions)."""
    return stored is not None and int(stored) > version


def cluster_point_id(run_id: str, cluster_id: int) -> str:
    """Point id of a cluster in the catalogue: one entry per (run, cluster), so a run's catalogue is
    written beside the live one and becomes visible with the run."""
    return str(uuid.uuid5(_META_NAMESPACE, f"cluster:{run_id}:{cluster_id}"))


def run_point_id(run_id: str) -> str:
    """Point id of a run record."""
    return str(uuid.uuid5(_META_NAMESPACE, f"run:{run_id}"))


def map_point_id(run_id: str, ticket_id: str) -> str:
    """Point id of a ticket's place on a run's map."""
    return str(uuid.uuid5(_META_NAMESPACE, f"map:{run_id}:{ticket_id}"))


class QdrantStore:
    """:class:`~constellate.store.base.VectorStore` over any :class:`Collection` backend."""

    def __init__(
        self,
        tickets: Collection,
        clusters: Collection,
        runs: Collection,
        map_points: Collection,
        write_batch: int = 512,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.tickets = tickets
        self.clusters = clusters
        self.runs = runs
        self.map_points = map_points
        self.write_batch = write_batch
        self._on_close = on_close
        self._ensured: int | None = None

    @property
    def concurrent_writes(self) -> bool:
        """Whether a ticket write lets other threads run meanwhile (see :class:`Collection`)."""
        return bool(self.tickets.concurrent_writes)

    # -- set-up -----------------------------------------------------------------------------------
    def ensure_collections(self, dim: int) -> None:
        """Create the collections and their payload indexes if missing (idempotent), checked against
        the engine once per store object: ingestion calls this for every batch."""
        if self._ensured == dim:
            return
        self.tickets.create(dim, TICKET_INDEXES, retired=RETIRED_INDEXES)
        self.clusters.create(dim, CLUSTER_INDEXES)
        self.runs.create(_RUN_DIM, RECORD_INDEXES)
        self.map_points.create(_RUN_DIM, MAP_INDEXES)
        self._rank_flagged()
        self._ensured = dim

    def _rank_flagged(self) -> int:
        """Rank the flagged tickets an older version left unranked (:func:`.migrate.rank_flagged`)."""
        return rank_flagged(self.tickets)

    # -- tickets ----------------------------------------------------------------------------------
    def upsert_tickets(
        self, tickets: Sequence[Ticket], vectors: np.ndarray, extra: Sequence[dict[str, Any]] | None = None
    ) -> list[str]:
        """Store tickets (point id = UUIDv5 of the ticket id); returns the point ids.

        A new ticket is inserted whole. A ticket already stored is updated in place: its vector and
        ticket fields (and ``extra``) are replaced, every other field (a human's outlier override,
        the labels) stays — labels it is not given are kept but marked guesses (``assigned_by``
        ``ingest``): they were computed from the old text, so the next run labels it again.

        Each write carries the ticket's ``version`` (its place in the ingestion stream; the time now
        for one without), stored as ``ingest_version``, and changes a stored ticket only if the
        stored version is not newer: the engine checks it on the point as it writes (its
        conditional update), the text first, then the vector if the text stored is this write's
        (a token per write, so that two writes of one version cannot mix either). So of two writes
        of one ticket — a redelivered entry after its successor, or two consumers at once — the
        newer version's text and vector are what stays, together, in any order or interleaving
        (tests/store: test_two_versions_written_interleaved_leave_the_newer_one_whole).
        """
        if len(tickets) != len(vectors):
            raise ValueError("one vector per ticket")
        if not self.tickets.exists():
            raise StoreError("the store has no tickets collection yet: call ensure_collections first")
        ids = [point_id(t.id) for t in tickets]
        vectors = np.asarray(vectors, dtype=np.float32)
        now = version_now()
        for start in range(0, len(ids), self.write_batch):
            part = range(start, min(len(ids), start + self.write_batch))
            version = {i: now if tickets[i].version is None else int(tickets[i].version) for i in part}
            token = {i: secrets.token_hex(8) for i in part}
            payloads = {
                i: {
                    "ticket_id": tickets[i].id,
                    "text": tickets[i].text,
                    "created_at": tickets[i].created_at,
                    "metadata": dict(tickets[i].metadata),
                    VERSION: version[i],
                    WRITE: token[i],
                    **(extra[i] if extra is not None else {}),
                }
                for i in part
            }
            stored = self._versions([ids[i] for i in part])
            fresh = [i for i in part if ids[i] not in stored]
            if fresh:
                fresh_ids = [ids[i] for i in fresh]
                self.tickets.upsert(fresh_ids, vectors[fresh], [payloads[i] for i in fresh], insert_only=True)
                # another writer may have inserted one of them meanwhile: it is updated like a stored one
                won = self._versions(fresh_ids)
                for i in fresh:  # not read back (a lagging replica): written the conditional way too
                    seen = won.get(ids[i], (None, None))
                    if seen[1] != token[i]:
                        stored[ids[i]] = seen
            again = [i for i in part if ids[i] in stored and not _newer(stored[ids[i]][0], version[i])]
            self.tickets.update_points(
                [
                    PointUpdate(
                        ids[i],
                        vectors[i],
                        {**_GUESSED, **payloads[i]},
                        payload_if=Filter(must_not=(Range(VERSION, gte=version[i] + 1),)),
                        vector_if=Filter(must=(Match(WRITE, token[i]),)),
                    )
                    for i in again
                ]
            )
        return ids

    def _versions(self, ids: Sequence[str]) -> dict[str, tuple[int | None, str | None]]:
        """The stored version and write token of each of ``ids`` that is stored (None: stored
        before versions)."""
        found = self.tickets.retrieve(ids, fields=[VERSION, WRITE])
        return {r.id: (r.payload.get(VERSION), r.payload.get(WRITE)) for r in found}

    def set_payloads_at_version(self, updates: Sequence[tuple[str, int, dict[str, Any]]]) -> None:
        """Merge each payload into its ticket point only while it holds that version (labels computed
        from a vector are not written onto a newer text): one conditional engine write each."""
        for pid, version, payload in updates:
            self.tickets.set_payload_where(
                Filter(must=(Match(VERSION, int(version)),)).on_point(pid), payload
            )

    def get_ticket(self, ticket_id: str) -> Record | None:
        """The stored ticket with this external id, or None."""
        found = self.tickets.retrieve([point_id(ticket_id)])
        return found[0] if found else None

    def get_points(
        self, ids: Sequence[str], with_vector: bool = False, fields: Sequence[str] | None = None
    ) -> list[Record]:
        """Ticket points by point id (missing ids are left out); ``fields`` limits the payload."""
        return self.tickets.retrieve(ids, with_vector=with_vector, fields=fields)

    def iter_vectors(
        self,
        page_size: int = 2048,
        fields: Sequence[str] = (),
        filter: Filter | None = None,
        start: str | None = None,
        stop: str | None = None,
    ) -> Iterator[VectorPage]:
        """Ticket vectors in point-id order, in pages: all of them, or ``start <= id < stop``.

        Point ids are UUIDv5 hashes, so an id range holds an even share of the tickets.
        """
        offset = start
        while True:
            page, offset = self.tickets.scroll_vectors(filter, page_size, offset, list(fields))
            if stop is not None:
                kept = [pid < stop for pid in page.ids]
                if not all(kept):
                    page, offset = page.subset(np.flatnonzero(kept)), None
            if page.ids:
                yield page
            if offset is None:
                return

    def set_payloads(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Merge payload fields into many ticket points (by point id), in batches."""
        for start in range(0, len(updates), self.write_batch):
            self.tickets.set_payloads(updates[start : start + self.write_batch])

    def set_payload_ids(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Merge the same ``payload`` into many ticket points (one engine call per 4,096)."""
        for start in range(0, len(ids), 4096):
            self.tickets.set_payload(ids[start : start + 4096], payload)

    def set_payload_where(self, filter: Filter, payload: dict[str, Any]) -> None:
        """Merge ``payload`` into every ticket matching ``filter`` (one engine call)."""
        self.tickets.set_payload_where(filter, payload)

    def search(self, vector: np.ndarray, limit: int = 10, filter: Filter | None = None) -> list[Record]:
        """Nearest tickets by cosine similarity, honouring ``filter``."""
        return self.tickets.query(vector, limit, filter)

    def near_ids(
        self,
        vector: np.ndarray,
        score_threshold: float,
        filter: Filter | None = None,
        page: int = 10_000,
        max_hits: int = MAX_HITS,
    ) -> list[tuple[str, float]]:
        """Every ticket whose cosine similarity to ``vector`` is at least ``score_threshold`` (an
        exact search): point ids and scores, best first. Each search scans every ticket, so a full
        answer asks again for eight times as many rather than for the next page (3 scans, not 10,
        for 100k hits)."""
        limit = page
        while True:  # ask again for 8x as many, up to max_hits
            out = self.tickets.query_ids(vector, limit, filter, score_threshold)
            if len(out) < limit:
                return out
            if limit >= max_hits:
                break
            limit = min(limit * 8, max_hits)
        while True:  # beyond that, by offset (a server answers in bounded responses)
            more = self.tickets.query_ids(vector, max_hits, filter, score_threshold, offset=len(out))
            out.extend(more)
            if len(more) < max_hits:
                return out

    def scroll_tickets(
        self,
        filter: Filter | None = None,
        limit: int = 100,
        offset: str | None = None,
        fields: Sequence[str] | None = None,
        order_by: str | None = None,
    ) -> tuple[list[Record], str | None]:
        """A page of tickets (payload only, or just ``fields``) and the offset of the next page; with
        ``order_by`` (``"field"`` or ``"-field"``, an indexed field) the first ``limit`` in that order."""
        return self.tickets.scroll(filter, limit=limit, offset=offset, fields=fields, order_by=order_by)

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

    def set_cluster_fields(self, run_id: str, cluster_id: int, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into one catalogue entry (a no-op if it does not exist)."""
        pid = cluster_point_id(run_id, cluster_id)
        if self.clusters.retrieve([pid], fields=[]):
            self.clusters.set_payloads([(pid, fields)])

    def list_clusters(
        self, run_id: str | None, with_vector: bool = False, level: str | None = "cluster"
    ) -> list[Record]:
        """A run's catalogue entries of ``level`` (``cluster`` — entries without a level are
        clusters —, ``topic``, or None for both), ordered by id (empty for ``None``: no run yet)."""
        if run_id is None:
            return []
        run = Match("run_id", run_id)
        if level is None:
            flt = Filter(must=(run,))
        elif level == "cluster":
            flt = Filter(must=(run,), must_not=(Match("level", "topic"),))
        else:
            flt = Filter(must=(run, Match("level", level)))
        out = _scroll_all(self.clusters, flt, with_vector=with_vector)
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
        stale = self.clusters.count(flt)
        if stale:
            self.clusters.delete_where(flt)
        return stale

    # -- map sample -------------------------------------------------------------------------------
    def save_map(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """A run's map sample: one small point per placed ticket (``ticket_id``, ``x``, ``y``, ...)."""
        ids = [map_point_id(run_id, str(r["ticket_id"])) for r in rows]
        payloads = [{**r, "run_id": run_id} for r in rows]
        for start in range(0, len(ids), self.write_batch):
            end = start + self.write_batch
            self.map_points.upsert(
                ids[start:end], np.ones((len(ids[start:end]), _RUN_DIM)), payloads[start:end]
            )

    def list_map(self, run_id: str | None, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` map points of a run (a bounded read of the run's own sample)."""
        if run_id is None:
            return []
        out: list[dict[str, Any]] = []
        offset: str | None = None
        flt = Filter(must=(Match("run_id", run_id),))
        while len(out) < limit:
            records, offset = self.map_points.scroll(flt, limit=min(2048, limit - len(out)), offset=offset)
            out.extend(r.payload for r in records)
            if offset is None or not records:
                break
        return out

    def update_map_where(self, run_id: str, filter: Filter, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into a run's map points matching ``filter`` (an edit moved their tickets)."""
        flt = Filter(must=(Match("run_id", run_id), *filter.must), must_not=filter.must_not)
        self.map_points.set_payload_where(flt, fields)

    def prune_map(self, keep_run_id: str) -> None:
        """Delete the map points of every run but ``keep_run_id``."""
        self.map_points.delete_where(Filter(must_not=(Match("run_id", keep_run_id),)))

    # -- runs, records and state ------------------------------------------------------------------
    def save_run(self, run: dict[str, Any]) -> None:
        """Insert or replace a run record (needs ``run_id``; ordered by ``started_at``)."""
        payload = {**run, "kind": "run", "created_at": run.get("created_at") or run.get("started_at")}
        self.runs.upsert([run_point_id(str(run["run_id"]))], _ONE, [payload])

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run record, or None."""
        found = self.runs.retrieve([run_point_id(run_id)])
        return _strip_kind(found[0].payload) if found else None

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` run records, newest first (ordered and limited by the engine)."""
        return self.list_records("run", limit=limit)

    def save_record(self, kind: str, record_id: str, record: dict[str, Any]) -> None:
        """Insert or replace a small record of ``kind`` (``edit``, ``alert``) beside the runs."""
        self.runs.upsert([_record_point(kind, record_id)], _ONE, [{**record, "kind": kind}])

    def get_record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        """One record by kind and id (a point lookup), or None."""
        found = self.runs.retrieve([_record_point(kind, record_id)])
        return _strip_kind(found[0].payload) if found else None

    def list_records(
        self, kind: str, limit: int | None = None, where: Filter | None = None
    ) -> list[dict[str, Any]]:
        """Records of ``kind`` (matching ``where``), newest ``created_at`` first: the newest ``limit``
        (ordered and limited by the engine), or all of them (paged) when ``limit`` is None."""
        where = where or Filter()
        flt = Filter(must=(Match("kind", kind), *where.must), must_not=where.must_not, should=where.should)
        if limit is not None:
            records, _ = self.runs.scroll(flt, limit=limit, offset=None, order_by="-created_at")
            return [_strip_kind(r.payload) for r in records]
        found = [_strip_kind(r.payload) for r in _scroll_all(self.runs, flt)]
        found.sort(key=lambda r: str(r.get("created_at", "")), reverse=True)
        return found

    def prune_records(self, kind: str, keep: int) -> int:
        """Keep the newest ``keep`` records of ``kind``; delete older ones. Returns how many went."""
        newest, _ = self.runs.scroll(
            Filter(must=(Match("kind", kind),)), limit=keep + 1, offset=None, order_by="-created_at"
        )
        if len(newest) <= keep:
            return 0
        cutoff = str(newest[keep - 1].payload["created_at"]) if keep else None
        flt = Filter(must=(Match("kind", kind), DateRange("created_at", lt=cutoff)))
        gone = self.runs.count(flt)
        self.runs.delete_where(flt)
        return gone

    def get_state(self) -> dict[str, Any]:
        """Service state (the current run pointer, its slot, ``version``); empty before the first run."""
        found = self.runs.retrieve([_STATE_ID])
        return _strip_kind(found[0].payload) if found else {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Replace the service state unconditionally (tests and repairs; runs use :meth:`swap_state`)."""
        self.runs.upsert([_STATE_ID], _ONE, [{**state, "kind": "state"}])

    def swap_state(self, version: int, state: dict[str, Any]) -> bool:
        """Compare-and-set the service state: see :meth:`swap_record`."""
        return self._swap(_STATE_ID, "state", version, state)

    def swap_record(self, kind: str, record_id: str, version: int, record: dict[str, Any]) -> bool:
        """Compare-and-set: write ``record`` with ``version + 1`` only if the stored one's ``version``
        is still ``version`` (0 = none stored yet). The engine checks the condition atomically
        (Qdrant's conditional update); returns whether this write is the one stored."""
        return self._swap(_record_point(kind, record_id), kind, version, record)

    def _swap(self, pid: str, kind: str, version: int, record: dict[str, Any]) -> bool:
        token = secrets.token_hex(8)  # tells our write from a competitor's with the same version
        new = {**record, "version": version + 1, "kind": kind, "write_token": token}
        if version == 0:
            self.runs.upsert([pid], _ONE, [new], insert_only=True)
        else:
            self.runs.upsert([pid], _ONE, [new], condition=Filter(must=(Match("version", version),)))
        found = self.runs.retrieve([pid], fields=["version", "write_token"])
        stored = found[0].payload if found else {}
        return stored.get("write_token") == token

    # -- lifecycle --------------------------------------------------------------------------------
    def optimize(self) -> None:
        """Fold fresh and relabelled points back into the search index (embedded engine only)."""
        self.tickets.optimize()
        self.clusters.optimize()

    def close(self) -> None:
        """Flush and release the collections."""
        for collection in (self.tickets, self.clusters, self.runs, self.map_points):
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
    return {k: v for k, v in payload.items() if k not in ("kind", "write_token")}
