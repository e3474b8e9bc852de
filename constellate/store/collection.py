"""The few primitive operations one Qdrant collection offers; each adapter implements them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from constellate.store.base import Filter, Record, VectorPage

IndexKind = str  # "keyword" | "integer" | "bool" | "datetime" | "float"


@dataclass(frozen=True)
class PointUpdate:
    """A conditional change of one stored point: merge ``payload`` into it if it matches
    ``payload_if``, then set its vector if it (by then) matches ``vector_if``."""

    id: str
    vector: np.ndarray
    payload: dict[str, Any]
    payload_if: Filter
    vector_if: Filter


class Collection(Protocol):
    """One collection (a Qdrant collection, or one qdrant-edge shard).

    ``concurrent_writes``: whether other Python threads run while a write call is under way (a
    server's network wait lets them; qdrant-edge's calls take the GIL back every few points).
    """

    concurrent_writes: bool

    def exists(self) -> bool: ...
    def create(self, dim: int, indexes: dict[str, IndexKind], retired: Sequence[str] = ()) -> None:
        """Create the collection if missing, add the missing ``indexes`` and drop any ``retired`` ones."""
        ...

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict[str, Any]],
        condition: Filter | None = None,
        insert_only: bool = False,
    ) -> None:
        """Insert or replace points. ``condition``: an existing point is replaced only if it matches
        (Qdrant's conditional update; a missing point is inserted). ``insert_only``: never replace."""
        ...

    def update_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None: ...
    def update_points(self, updates: Sequence[PointUpdate]) -> None:
        """Apply each :class:`PointUpdate` in order, each of its two writes one engine operation."""
        ...

    def set_payloads(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> None: ...
    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Merge the same ``payload`` into many points in one engine operation."""
        ...

    def set_payload_where(self, filter: Filter, payload: dict[str, Any]) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def delete_where(self, filter: Filter) -> None: ...
    def retrieve(
        self, ids: Sequence[str], with_vector: bool = False, fields: Sequence[str] | None = None
    ) -> list[Record]: ...
    def scroll(
        self,
        filter: Filter | None,
        limit: int,
        offset: str | None,
        with_vector: bool = False,
        fields: Sequence[str] | None = None,
        order_by: str | None = None,
    ) -> tuple[list[Record], str | None]:
        """A page in point-id order from ``offset``, or (``order_by`` = ``"field"`` / ``"-field"``,
        ascending / descending on an indexed field) the first ``limit`` points in that order."""
        ...

    def scroll_vectors(
        self, filter: Filter | None, limit: int, offset: str | None, fields: Sequence[str]
    ) -> tuple[VectorPage, str | None]:
        """:meth:`scroll` with vectors and only ``fields``, as one :class:`VectorPage` (a pass's read)."""
        ...

    def query(self, vector: np.ndarray, limit: int, filter: Filter | None) -> list[Record]: ...
    def query_ids(
        self, vector: np.ndarray, limit: int, filter: Filter | None, score_threshold: float, offset: int = 0
    ) -> list[tuple[str, float]]:
        """Exact (brute-force) search: ids and scores of the points scoring at least
        ``score_threshold``, best first, ``limit`` of them after skipping ``offset``."""
        ...

    def count(self, filter: Filter | None) -> int: ...
    def facet(self, key: str, filter: Filter | None, limit: int) -> dict[Any, int]: ...
    def optimize(self) -> None: ...
    def close(self) -> None: ...
