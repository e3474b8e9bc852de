"""qdrant-edge adapter: Qdrant's engine in-process, one shard directory per collection."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from constellate.exceptions import StoreError
from constellate.store.base import Condition, Filter, IsEmpty, Match, MatchAny, Record, record_from_point

_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "bool": qe.PayloadSchemaType.Bool,
    "datetime": qe.PayloadSchemaType.Datetime,
    "float": qe.PayloadSchemaType.Float,
}


# qdrant-edge-py 0.9 turns a Python bool in MatchValue into an integer, so a bool field never
# matches. Every bool written gets a keyword twin ("true"/"false") that filters use instead; the
# twin is hidden from readers.
_BOOL_TWIN = "__kw"


def _with_bool_twins(payload: dict[str, Any]) -> dict[str, Any]:
    twins = {k + _BOOL_TWIN: "true" if v else "false" for k, v in payload.items() if isinstance(v, bool)}
    return {**payload, **twins} if twins else payload


def _without_bool_twins(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if not k.endswith(_BOOL_TWIN)}


def _condition(cond: Condition) -> qe.FieldCondition | qe.IsEmptyCondition:
    if isinstance(cond, IsEmpty):
        return qe.IsEmptyCondition(cond.key)
    if isinstance(cond, Match) and isinstance(cond.value, bool):
        twin = "true" if cond.value else "false"
        return qe.FieldCondition(cond.key + _BOOL_TWIN, match=qe.MatchValue(twin))
    if isinstance(cond, Match):
        return qe.FieldCondition(cond.key, match=qe.MatchValue(cond.value))
    if isinstance(cond, MatchAny):
        return qe.FieldCondition(cond.key, match=qe.MatchAny(list(cond.values)))
    return qe.FieldCondition(cond.key, range=qe.RangeDateTime(gte=cond.gte, lt=cond.lt))


def to_edge_filter(flt: Filter | None) -> qe.Filter | None:
    """Translate the neutral filter to qdrant-edge's."""
    if not flt:
        return None
    return qe.Filter(
        must=[_condition(c) for c in flt.must] or None,
        must_not=[_condition(c) for c in flt.must_not] or None,
    )


def _record(point: Any, with_vector: bool) -> Record:
    return record_from_point(point, with_vector, _without_bool_twins)


class EdgeCollection:
    """One qdrant-edge shard on disk. Only one process may open a shard directory at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._shard: qe.EdgeShard | None = None
        if (self.path / "edge_config.json").exists():
            try:
                self._shard = qe.EdgeShard.load(str(self.path))
            except Exception as exc:  # the engine raises plain exceptions with a reason
                raise StoreError(f"cannot open embedded store at {self.path}: {exc}") from exc

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise StoreError(f"collection at {self.path} does not exist yet")
        return self._shard

    def exists(self) -> bool:
        return self._shard is not None

    def create(self, dim: int, indexes: dict[str, str]) -> None:
        with self._lock:
            if self._shard is None:
                self.path.mkdir(parents=True, exist_ok=True)
                config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine))
                self._shard = qe.EdgeShard.create(str(self.path), config)
            existing = self._shard.info().payload_schema
            for name, kind in indexes.items():
                if name not in existing:
                    self._shard.update(qe.UpdateOperation.create_field_index(name, _SCHEMA[kind]))
                if kind == "bool" and name + _BOOL_TWIN not in existing:
                    self._shard.update(
                        qe.UpdateOperation.create_field_index(name + _BOOL_TWIN, qe.PayloadSchemaType.Keyword)
                    )

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        points = [
            qe.Point(pid, vec.tolist(), _with_bool_twins(payload))
            for pid, vec, payload in zip(ids, np.asarray(vectors, dtype=np.float32), payloads, strict=True)
        ]
        if points:
            self.shard.update(qe.UpdateOperation.upsert_points(points))

    def set_payloads(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> None:
        for pid, payload in updates:
            self.shard.update(qe.UpdateOperation.set_payload([pid], _with_bool_twins(payload)))

    def delete(self, ids: Sequence[str]) -> None:
        if ids and self._shard is not None:
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def retrieve(self, ids: Sequence[str], with_vector: bool = False) -> list[Record]:
        if self._shard is None or not ids:
            return []
        points = self.shard.retrieve(list(ids), with_payload=True, with_vector=with_vector)
        return [_record(p, with_vector) for p in points]

    def scroll(
        self,
        filter: Filter | None,
        limit: int,
        offset: str | None,
        with_vector: bool = False,
        fields: Sequence[str] | None = None,
    ) -> tuple[list[Record], str | None]:
        if self._shard is None:
            return [], None
        with_payload: bool | list[str] = True if fields is None else list(fields) or False
        request = qe.ScrollRequest(
            offset=offset,
            limit=limit,
            filter=to_edge_filter(filter),
            with_payload=with_payload,
            with_vector=with_vector,
        )
        points, next_offset = self.shard.scroll(request)
        return [_record(p, with_vector) for p in points], (
            str(next_offset) if next_offset is not None else None
        )

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
        return {hit.value: int(hit.count) for hit in response.hits}

    def optimize(self) -> None:
        if self._shard is not None:
            self._shard.optimize()

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard = None
