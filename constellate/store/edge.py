"""qdrant-edge adapter: Qdrant's engine in-process, one shard directory per collection."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from constellate.exceptions import StoreBusy, StoreError
from constellate.store.base import (
    Condition,
    DateRange,
    Filter,
    HasId,
    IsEmpty,
    Match,
    MatchAny,
    Range,
    Record,
    VectorPage,
    record_from_point,
    vector_page,
)
from constellate.store.collection import PointUpdate

_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "bool": qe.PayloadSchemaType.Bool,
    "datetime": qe.PayloadSchemaType.Datetime,
    "float": qe.PayloadSchemaType.Float,
}


# qdrant-edge-py 0.9 turns a Python bool in MatchValue into an integer, so a bool field never
# matches. A bool written true gets a keyword twin ("true") that filters use instead; written false,
# its twin is cleared (None), not set to "false": the common value would be the costliest entry of
# the twin's index (a keyword index's cost per point grows with the points sharing a value), so a
# filter can ask for a true flag or for its absence (must_not), not for a false one. The twin is
# hidden from readers.
_BOOL_TWIN = "__kw"


def _with_bool_twins(payload: dict[str, Any]) -> dict[str, Any]:
    twins = {k + _BOOL_TWIN: "true" if v else None for k, v in payload.items() if isinstance(v, bool)}
    return {**payload, **twins} if twins else payload


def _without_bool_twins(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if not k.endswith(_BOOL_TWIN)}


def _condition(cond: Condition) -> qe.FieldCondition | qe.IsEmptyCondition | qe.HasIdCondition:
    if isinstance(cond, HasId):
        return qe.HasIdCondition(set(cond.ids))
    if isinstance(cond, IsEmpty):
        return qe.IsEmptyCondition(cond.key)
    if isinstance(cond, Match) and isinstance(cond.value, bool):
        if not cond.value:
            raise StoreError(f"filter {cond.key} = false is not kept: ask must_not {cond.key} = true")
        return qe.FieldCondition(cond.key + _BOOL_TWIN, match=qe.MatchValue("true"))
    if isinstance(cond, Match):
        return qe.FieldCondition(cond.key, match=qe.MatchValue(cond.value))
    if isinstance(cond, MatchAny):
        return qe.FieldCondition(cond.key, match=qe.MatchAny(list(cond.values)))
    if isinstance(cond, Range):
        return qe.FieldCondition(cond.key, range=qe.RangeFloat(gte=cond.gte, lt=cond.lt))
    assert isinstance(cond, DateRange)
    return qe.FieldCondition(cond.key, range=qe.RangeDateTime(gte=cond.gte, lt=cond.lt))


def to_edge_filter(flt: Filter | None) -> qe.Filter | None:
    """Translate the neutral filter to qdrant-edge's."""
    if not flt:
        return None
    return qe.Filter(
        must=[_condition(c) for c in flt.must] or None,
        must_not=[_condition(c) for c in flt.must_not] or None,
        should=[_condition(c) for c in flt.should] or None,
    )


def _record(point: Any, with_vector: bool) -> Record:
    return record_from_point(point, with_vector, _without_bool_twins)


class EdgeCollection:
    """One qdrant-edge shard on disk. Only one process may open a shard directory at a time."""

    concurrent_writes = False  # its calls take the GIL back within the work, every few points

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._shard: qe.EdgeShard | None = None
        if (self.path / "edge_config.json").exists():
            try:
                self._shard = qe.EdgeShard.load(str(self.path))
            except Exception as exc:  # the engine raises plain exceptions with a reason
                if "WouldBlock" in str(exc):  # its WAL lock: another process has this directory open
                    raise StoreBusy(f"the embedded store at {self.path} is open in another process") from exc
                raise StoreError(f"cannot open embedded store at {self.path}: {exc}") from exc

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise StoreError(f"collection at {self.path} does not exist yet")
        return self._shard

    def exists(self) -> bool:
        return self._shard is not None

    def create(self, dim: int, indexes: dict[str, str], retired: Sequence[str] = ()) -> None:
        with self._lock:
            if self._shard is None:
                self.path.mkdir(parents=True, exist_ok=True)
                config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine))
                self._shard = qe.EdgeShard.create(str(self.path), config)
            existing = self._shard.info().payload_schema
            for name in retired:
                if name in existing:
                    self._shard.update(qe.UpdateOperation.delete_field_index(name))
            for name, kind in indexes.items():
                if kind == "bool":  # filters use the keyword twin; a bool index would only slow writes
                    if name in existing:
                        self._shard.update(qe.UpdateOperation.delete_field_index(name))
                    name, kind = name + _BOOL_TWIN, "keyword"
                if name not in existing:
                    self._shard.update(qe.UpdateOperation.create_field_index(name, _SCHEMA[kind]))

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict[str, Any]],
        condition: Filter | None = None,
        insert_only: bool = False,
    ) -> None:
        points = [
            qe.Point(pid, vec.tolist(), _with_bool_twins(payload))
            for pid, vec, payload in zip(ids, np.asarray(vectors, dtype=np.float32), payloads, strict=True)
        ]
        if points:
            mode = qe.UpdateMode.InsertOnly if insert_only else None
            op = qe.UpdateOperation.upsert_points(
                points, condition=to_edge_filter(condition), update_mode=mode
            )
            self.shard.update(op)

    def update_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        pairs = [
            qe.PointVectors(pid, vec.tolist())
            for pid, vec in zip(ids, np.asarray(vectors, dtype=np.float32), strict=True)
        ]
        if pairs:
            self.shard.update(qe.UpdateOperation.update_vectors(pairs))

    def update_points(self, updates: Sequence[PointUpdate]) -> None:
        for u in updates:
            self.shard.update(
                qe.UpdateOperation.set_payload_by_filter(
                    to_edge_filter(u.payload_if.on_point(u.id)), _with_bool_twins(u.payload)
                )
            )
            vectors = [qe.PointVectors(u.id, np.asarray(u.vector, dtype=np.float32).tolist())]
            self.shard.update(
                qe.UpdateOperation.update_vectors(vectors, condition=to_edge_filter(u.vector_if))
            )

    def set_payloads(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> None:
        for pid, payload in updates:
            self.shard.update(qe.UpdateOperation.set_payload([pid], _with_bool_twins(payload)))

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        if ids:
            self.shard.update(qe.UpdateOperation.set_payload(list(ids), _with_bool_twins(payload)))

    def set_payload_where(self, filter: Filter, payload: dict[str, Any]) -> None:
        if self._shard is not None:
            op = qe.UpdateOperation.set_payload_by_filter(to_edge_filter(filter), _with_bool_twins(payload))
            self.shard.update(op)

    def delete(self, ids: Sequence[str]) -> None:
        if ids and self._shard is not None:
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def delete_where(self, filter: Filter) -> None:
        if self._shard is not None:
            self.shard.update(qe.UpdateOperation.delete_points_by_filter(to_edge_filter(filter)))

    def retrieve(
        self, ids: Sequence[str], with_vector: bool = False, fields: Sequence[str] | None = None
    ) -> list[Record]:
        if self._shard is None or not ids:
            return []
        with_payload: bool | list[str] = True if fields is None else list(fields) or False
        points = self.shard.retrieve(list(ids), with_payload=with_payload, with_vector=with_vector)
        return [_record(p, with_vector) for p in points]

    def scroll(
        self,
        filter: Filter | None,
        limit: int,
        offset: str | None,
        with_vector: bool = False,
        fields: Sequence[str] | None = None,
        order_by: str | None = None,
    ) -> tuple[list[Record], str | None]:
        if self._shard is None:
            return [], None
        with_payload: bool | list[str] = True if fields is None else list(fields) or False
        order = None
        if order_by:
            key, desc = order_by.removeprefix("-"), order_by.startswith("-")
            order = qe.OrderBy(key, qe.Direction.Desc if desc else qe.Direction.Asc)
        request = qe.ScrollRequest(
            offset=None if order else offset,
            limit=limit,
            filter=to_edge_filter(filter),
            with_payload=with_payload,
            with_vector=with_vector,
            order_by=order,
        )
        points, next_offset = self.shard.scroll(request)
        return [_record(p, with_vector) for p in points], (
            str(next_offset) if next_offset is not None and not order else None
        )

    def scroll_vectors(
        self, filter: Filter | None, limit: int, offset: str | None, fields: Sequence[str]
    ) -> tuple[VectorPage, str | None]:
        if self._shard is None:
            return vector_page([]), None
        request = qe.ScrollRequest(
            offset=offset,
            limit=limit,
            filter=to_edge_filter(filter),
            with_payload=list(fields) or False,
            with_vector=True,
        )
        points, next_offset = self.shard.scroll(request)
        # only the fields asked for come back, never a flag's filter twin: nothing to clean
        return vector_page(points), None if next_offset is None else str(next_offset)

    def query(self, vector: np.ndarray, limit: int, filter: Filter | None) -> list[Record]:
        if self._shard is None:
            return []
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            filter=to_edge_filter(filter),
            with_payload=True,
        )
        return [_record(p, False) for p in self.shard.query(request)]

    def query_ids(
        self, vector: np.ndarray, limit: int, filter: Filter | None, score_threshold: float, offset: int = 0
    ) -> list[tuple[str, float]]:
        if self._shard is None:
            return []
        request = qe.QueryRequest(
            limit=limit,
            offset=offset or None,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            filter=to_edge_filter(filter),
            with_payload=False,
            with_vector=False,
            score_threshold=score_threshold,
            params=qe.SearchParams(exact=True),
        )
        return [(str(p.id), float(p.score)) for p in self.shard.query(request)]

    def count(self, filter: Filter | None) -> int:
        if self._shard is None:
            return 0
        return int(self.shard.count(qe.CountRequest(exact=True, filter=to_edge_filter(filter))))

    def facet(self, key: str, filter: Filter | None, limit: int) -> dict[Any, int]:
        if self._shard is None:
            return {}
        response = self.shard.facet(
            qe.FacetRequest(key, limit=limit, exact=True, filter=to_edge_filter(filter))
        )
        # values whose last point moved away are still listed, with a count of 0
        return {hit.value: int(hit.count) for hit in response.hits if hit.count}

    def optimize(self) -> None:
        if self._shard is not None:
            self._shard.optimize()

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard = None
