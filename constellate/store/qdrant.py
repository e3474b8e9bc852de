"""qdrant-client adapter: a Qdrant server (``CONSTELLATE_QDRANT_URL``) or its ``:memory:`` mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

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
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "bool": qm.PayloadSchemaType.BOOL,
    "datetime": qm.PayloadSchemaType.DATETIME,
    "float": qm.PayloadSchemaType.FLOAT,
}


def _condition(cond: Condition) -> qm.FieldCondition | qm.IsEmptyCondition | qm.HasIdCondition:
    if isinstance(cond, HasId):
        return qm.HasIdCondition(has_id=list(cond.ids))
    if isinstance(cond, IsEmpty):
        return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=cond.key))
    if isinstance(cond, Match):
        return qm.FieldCondition(key=cond.key, match=qm.MatchValue(value=cond.value))
    if isinstance(cond, MatchAny):
        return qm.FieldCondition(key=cond.key, match=qm.MatchAny(any=list(cond.values)))
    if isinstance(cond, Range):
        return qm.FieldCondition(key=cond.key, range=qm.Range(gte=cond.gte, lt=cond.lt))
    assert isinstance(cond, DateRange)
    return qm.FieldCondition(key=cond.key, range=qm.DatetimeRange(gte=cond.gte, lt=cond.lt))


def to_client_filter(flt: Filter | None) -> qm.Filter | None:
    """Translate the neutral filter to qdrant-client's models."""
    if not flt:
        return None
    return qm.Filter(
        must=[_condition(c) for c in flt.must] or None,
        must_not=[_condition(c) for c in flt.must_not] or None,
        should=[_condition(c) for c in flt.should] or None,
    )


def _record(point: Any, with_vector: bool) -> Record:
    return record_from_point(point, with_vector, dict)


class ClientCollection:
    """One collection on a Qdrant server reached through qdrant-client."""

    concurrent_writes = True  # a server call waits on the network with the GIL released (local mode
    # is pure Python: its threads interleave without the engine's stalls)

    def __init__(
        self,
        client: QdrantClient,
        name: str,
        write_batch: int = 512,
        shard_number: int | None = None,
        replication_factor: int | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.write_batch = write_batch
        self.shard_number = shard_number
        self.replication_factor = replication_factor

    def exists(self) -> bool:
        return bool(self.client.collection_exists(self.name))

    def create(self, dim: int, indexes: dict[str, str], retired: Sequence[str] = ()) -> None:
        if not self.exists():
            self.client.create_collection(
                self.name,
                vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
                shard_number=self.shard_number,
                replication_factor=self.replication_factor,
            )
        existing = self.client.get_collection(self.name).payload_schema or {}
        for field in retired:
            if field in existing:
                self.client.delete_payload_index(self.name, field_name=field, wait=True)
        for field, kind in indexes.items():
            if field not in existing:
                self.client.create_payload_index(self.name, field_name=field, field_schema=_SCHEMA[kind])

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict[str, Any]],
        condition: Filter | None = None,
        insert_only: bool = False,
    ) -> None:
        points = [
            qm.PointStruct(id=pid, vector=vec.tolist(), payload=payload)
            for pid, vec, payload in zip(ids, np.asarray(vectors, dtype=np.float32), payloads, strict=True)
        ]
        if points:
            self.client.upsert(
                self.name,
                points=points,
                wait=True,
                update_filter=to_client_filter(condition),
                update_mode=qm.UpdateMode.INSERT_ONLY if insert_only else None,
            )

    def update_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        pairs = [
            qm.PointVectors(id=pid, vector=vec.tolist())
            for pid, vec in zip(ids, np.asarray(vectors, dtype=np.float32), strict=True)
        ]
        if pairs:
            self.client.update_vectors(self.name, points=pairs, wait=True)

    def update_points(self, updates: Sequence[PointUpdate]) -> None:
        for start in range(0, len(updates), self.write_batch):
            ops: list[Any] = []
            for u in updates[start : start + self.write_batch]:  # a request's operations apply in order
                payload_if = to_client_filter(u.payload_if.on_point(u.id))
                ops.append(
                    qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=u.payload, filter=payload_if))
                )
                vector = qm.PointVectors(id=u.id, vector=np.asarray(u.vector, dtype=np.float32).tolist())
                ops.append(
                    qm.UpdateVectorsOperation(
                        update_vectors=qm.UpdateVectors(
                            points=[vector], update_filter=to_client_filter(u.vector_if)
                        )
                    )
                )
            self.client.batch_update_points(self.name, update_operations=ops, wait=True)

    def set_payloads(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> None:
        for start in range(0, len(updates), self.write_batch):
            ops = [
                qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=payload, points=[pid]))
                for pid, payload in updates[start : start + self.write_batch]
            ]
            self.client.batch_update_points(self.name, update_operations=ops, wait=True)

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        if ids:
            self.client.set_payload(self.name, payload=payload, points=list(ids), wait=True)

    def set_payload_where(self, filter: Filter, payload: dict[str, Any]) -> None:
        if self.exists():
            self.client.set_payload(self.name, payload=payload, points=to_client_filter(filter), wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        if ids and self.exists():
            self.client.delete(self.name, points_selector=qm.PointIdsList(points=list(ids)), wait=True)

    def delete_where(self, filter: Filter) -> None:
        if self.exists():
            selector = qm.FilterSelector(filter=to_client_filter(filter))
            self.client.delete(self.name, points_selector=selector, wait=True)

    def retrieve(
        self, ids: Sequence[str], with_vector: bool = False, fields: Sequence[str] | None = None
    ) -> list[Record]:
        if not ids or not self.exists():
            return []
        with_payload: bool | list[str] = True if fields is None else list(fields) or False
        points = self.client.retrieve(
            self.name, ids=list(ids), with_payload=with_payload, with_vectors=with_vector
        )
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
        if not self.exists():
            return [], None
        with_payload: bool | list[str] = True if fields is None else list(fields) or False
        order = None
        if order_by:
            key, desc = order_by.removeprefix("-"), order_by.startswith("-")
            order = qm.OrderBy(key=key, direction=qm.Direction.DESC if desc else qm.Direction.ASC)
        points, next_offset = self.client.scroll(
            self.name,
            scroll_filter=to_client_filter(filter),
            limit=limit,
            offset=None if order else offset,
            with_payload=with_payload,
            with_vectors=with_vector,
            order_by=order,
        )
        return [_record(p, with_vector) for p in points], (
            str(next_offset) if next_offset is not None and not order else None
        )

    def scroll_vectors(
        self, filter: Filter | None, limit: int, offset: str | None, fields: Sequence[str]
    ) -> tuple[VectorPage, str | None]:
        if not self.exists():
            return vector_page([]), None
        points, next_offset = self.client.scroll(
            self.name,
            scroll_filter=to_client_filter(filter),
            limit=limit,
            offset=offset,
            with_payload=list(fields) or False,
            with_vectors=True,
        )
        return vector_page(points), None if next_offset is None else str(next_offset)

    def query(self, vector: np.ndarray, limit: int, filter: Filter | None) -> list[Record]:
        if not self.exists():
            return []
        response = self.client.query_points(
            self.name,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            query_filter=to_client_filter(filter),
            limit=limit,
            with_payload=True,
        )
        return [_record(p, False) for p in response.points]

    def query_ids(
        self, vector: np.ndarray, limit: int, filter: Filter | None, score_threshold: float, offset: int = 0
    ) -> list[tuple[str, float]]:
        if not self.exists():
            return []
        response = self.client.query_points(
            self.name,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            query_filter=to_client_filter(filter),
            limit=limit,
            offset=offset,
            score_threshold=score_threshold,
            search_params=qm.SearchParams(exact=True),
            with_payload=False,
        )
        return [(str(p.id), float(p.score)) for p in response.points]

    def count(self, filter: Filter | None) -> int:
        if not self.exists():
            return 0
        return int(self.client.count(self.name, count_filter=to_client_filter(filter), exact=True).count)

    def facet(self, key: str, filter: Filter | None, limit: int) -> dict[Any, int]:
        if not self.exists():
            return {}
        response = self.client.facet(
            self.name, key=key, facet_filter=to_client_filter(filter), limit=limit, exact=True
        )
        return {hit.value: int(hit.count) for hit in response.hits}

    def optimize(self) -> None:
        """The server optimises in the background; nothing to do."""

    def close(self) -> None:
        """The client is shared by the store and closed there."""
