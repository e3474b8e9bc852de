"""The VectorStore protocol, its record types and a backend-neutral filter."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from constellate.tickets import Ticket

# Indexed payload fields of ticket points; labels live in two slots (see constellate.labels). Every
# field a route or a run filters or orders on has an index, in both engines.
_SLOT_INDEXES = {
    "cluster_id": "integer",
    "is_outlier": "bool",
    "outlier_rank": "float",  # the score again, kept only on flagged tickets: what /outliers orders by
    "assigned_by": "keyword",
    "label_run": "keyword",
}
# Indexes an older store has and this code drops when it opens one: every ticket's outlier score was
# indexed (for /outliers' order) and that index was half of a label write's cost (docs/benchmarks.md);
# the ordered read now uses ``outlier_rank``, which only the flagged tickets carry.
RETIRED_INDEXES = tuple(f"{slot}_outlier_score" for slot in ("a", "b"))
TICKET_INDEXES = {
    "ticket_id": "keyword",
    "created_at": "datetime",
    "outlier_override": "keyword",
    **{f"{slot}_{name}": kind for slot in ("a", "b") for name, kind in _SLOT_INDEXES.items()},
}
CLUSTER_INDEXES = {"cluster_id": "integer", "run_id": "keyword", "level": "keyword"}
RECORD_INDEXES = {
    "kind": "keyword",
    "created_at": "datetime",
    "version": "integer",
    "cluster_id": "integer",
    "into": "integer",
    "from": "integer",
}
MAP_INDEXES = {"run_id": "keyword", "cluster_id": "integer"}


@dataclass(frozen=True)
class Match:
    """``key == value`` on a payload field."""

    key: str
    value: str | int | bool


@dataclass(frozen=True)
class MatchAny:
    """``key in values``."""

    key: str
    values: tuple[str, ...] | tuple[int, ...]


@dataclass(frozen=True)
class DateRange:
    """``gte <= key < lt`` on an RFC 3339 datetime field (either bound optional)."""

    key: str
    gte: str | None = None
    lt: str | None = None


@dataclass(frozen=True)
class Range:
    """``gte <= key < lt`` on a numeric field (either bound optional)."""

    key: str
    gte: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class IsEmpty:
    """``key`` is missing, null or an empty list."""

    key: str


@dataclass(frozen=True)
class HasId:
    """The point's id is one of ``ids``."""

    ids: tuple[str, ...]


Condition = Match | MatchAny | DateRange | Range | IsEmpty | HasId


@dataclass(frozen=True)
class Filter:
    """All of ``must``, none of ``must_not``, and (if given) at least one of ``should``."""

    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.must or self.must_not or self.should)

    def on_point(self, pid: str) -> Filter:
        """This filter, on point ``pid`` only."""
        return Filter(must=(HasId((pid,)), *self.must), must_not=self.must_not, should=self.should)


@dataclass
class Record:
    """A point read back from the store."""

    id: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None
    score: float | None = None


def record_from_point(point: Any, with_vector: bool, clean: Any = dict) -> Record:
    """A :class:`Record` from any Qdrant point-like object (``id``, ``payload``, ``vector``, ``score``)."""
    vector = None
    if with_vector:
        raw = point.vector  # qdrant-edge converts the vector to a list on every access: read it once
        vector = None if raw is None else np.asarray(raw, dtype=np.float32)
    return Record(
        id=str(point.id),
        payload=clean(point.payload or {}),
        vector=vector,
        score=getattr(point, "score", None),
    )


@dataclass
class VectorPage:
    """One page of a full scan: point ids, their vectors (n, dim) and the requested payload fields."""

    ids: list[str]
    vectors: np.ndarray
    payloads: list[dict[str, Any]] = field(default_factory=list)

    def subset(self, rows: Sequence[int]) -> VectorPage:
        """The page's ``rows``, in that order."""
        return VectorPage(
            ids=[self.ids[i] for i in rows],
            vectors=self.vectors[np.asarray(rows, dtype=np.int64)],
            payloads=[self.payloads[i] for i in rows] if self.payloads else [],
        )


def vector_page(points: Sequence[Any]) -> VectorPage:
    """A :class:`VectorPage` from Qdrant point-like objects (``id``, ``vector``, ``payload``): the
    vectors converted in one pass over the page (per point, ``np.asarray`` of a list cost as much
    as the engine's read; ``fromiter`` over them all takes half of ``np.array`` of the lists)."""
    if not points:
        return VectorPage(ids=[], vectors=np.empty((0, 0), np.float32), payloads=[])
    flat = itertools.chain.from_iterable(p.vector for p in points)
    return VectorPage(
        ids=[str(p.id) for p in points],
        vectors=np.fromiter(flat, dtype=np.float32).reshape(len(points), -1),
        payloads=[p.payload or {} for p in points],
    )


class VectorStore(Protocol):
    """What constellate needs from Qdrant. Implemented once over a :class:`Collection` backend."""

    @property
    def concurrent_writes(self) -> bool: ...
    def ensure_collections(self, dim: int) -> None: ...
    def upsert_tickets(
        self, tickets: Sequence[Ticket], vectors: np.ndarray, extra: Sequence[dict[str, Any]] | None = None
    ) -> list[str]: ...
    def get_ticket(self, ticket_id: str) -> Record | None: ...
    def get_points(
        self, ids: Sequence[str], with_vector: bool = False, fields: Sequence[str] | None = None
    ) -> list[Record]: ...
    def iter_vectors(
        self,
        page_size: int = 2048,
        fields: Sequence[str] = (),
        filter: Filter | None = None,
        start: str | None = None,
        stop: str | None = None,
    ) -> Iterator[VectorPage]: ...
    def set_payloads(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> None: ...
    def set_payloads_at_version(self, updates: Sequence[tuple[str, int, dict[str, Any]]]) -> None: ...
    def set_payload_ids(self, ids: Sequence[str], payload: dict[str, Any]) -> None: ...
    def set_payload_where(self, filter: Filter, payload: dict[str, Any]) -> None: ...
    def near_ids(
        self, vector: np.ndarray, score_threshold: float, filter: Filter | None = None, page: int = 10_000
    ) -> list[tuple[str, float]]: ...
    def search(self, vector: np.ndarray, limit: int = 10, filter: Filter | None = None) -> list[Record]: ...
    def scroll_tickets(
        self,
        filter: Filter | None = None,
        limit: int = 100,
        offset: str | None = None,
        fields: Sequence[str] | None = None,
        order_by: str | None = None,
    ) -> tuple[list[Record], str | None]: ...
    def count(self, filter: Filter | None = None) -> int: ...
    def facet(self, key: str, filter: Filter | None = None, limit: int = 10_000) -> dict[Any, int]: ...
    def upsert_clusters(
        self, run_id: str, clusters: Sequence[dict[str, Any]], centroids: np.ndarray
    ) -> None: ...
    def set_cluster_fields(self, run_id: str, cluster_id: int, fields: dict[str, Any]) -> None: ...
    def list_clusters(
        self, run_id: str | None, with_vector: bool = False, level: str | None = "cluster"
    ) -> list[Record]: ...
    def get_cluster(self, run_id: str | None, cluster_id: int) -> Record | None: ...
    def delete_cluster(self, run_id: str, cluster_id: int) -> None: ...
    def prune_clusters(self, keep_run_id: str) -> int: ...
    def save_map(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None: ...
    def list_map(self, run_id: str | None, limit: int) -> list[dict[str, Any]]: ...
    def update_map_where(self, run_id: str, filter: Filter, fields: dict[str, Any]) -> None: ...
    def prune_map(self, keep_run_id: str) -> None: ...
    def save_run(self, run: dict[str, Any]) -> None: ...
    def get_run(self, run_id: str) -> dict[str, Any] | None: ...
    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]: ...
    def save_record(self, kind: str, record_id: str, record: dict[str, Any]) -> None: ...
    def get_record(self, kind: str, record_id: str) -> dict[str, Any] | None: ...
    def list_records(
        self, kind: str, limit: int | None = None, where: Filter | None = None
    ) -> list[dict[str, Any]]: ...
    def prune_records(self, kind: str, keep: int) -> int: ...
    def get_state(self) -> dict[str, Any]: ...
    def set_state(self, state: dict[str, Any]) -> None: ...
    def swap_state(self, version: int, state: dict[str, Any]) -> bool: ...
    def swap_record(self, kind: str, record_id: str, version: int, record: dict[str, Any]) -> bool: ...
    def optimize(self) -> None: ...
    def close(self) -> None: ...
