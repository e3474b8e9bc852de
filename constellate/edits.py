"""Human edits: rename (and pin) a cluster, merge two, split tickets off, mark a ticket not an outlier.

Each edit is stored as a record, applied to the live labels and catalogue at once, and applied
again by every recluster after identity matching (:func:`apply_edits`), so it survives: a merged
pair stays one cluster, split-off tickets stay in their cluster, a pinned name stays.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

from constellate.clustering import ClusterResult
from constellate.embedding import normalize
from constellate.exceptions import InputError, NotFound
from constellate.identity import Lineage
from constellate.labels import SLOTS, label_filter, slot_field
from constellate.store.base import Filter, Match, Record, VectorStore
from constellate.tickets import point_id, utc_now_precise

EDIT_KIND = "edit"
META_KIND = "edit_meta"
NOT_OUTLIER = "outlier_override"  # ticket payload field; "no" = a human said it is not an outlier


def list_edits(store: VectorStore) -> list[dict[str, Any]]:
    """Every stored edit, newest first."""
    return store.list_records(EDIT_KIND)


def edits_for(edits: Sequence[dict[str, Any]], cluster_id: int) -> list[dict[str, Any]]:
    """The edits that touch ``cluster_id`` (for its lineage)."""
    keys = ("cluster_id", "into", "from")
    return [e for e in edits if cluster_id in {e.get(k) for k in keys}]


def rename_cluster(store: VectorStore, cluster_id: int, name: str, pinned: bool = True) -> dict[str, Any]:
    """Give a cluster a human name; pinned names are kept by every later run."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("name must be 1-200 characters")
    run, slot, entry = _live_cluster(store, cluster_id)
    _relabel(store, slot, cluster_id, {"cluster_name": name})
    entry.payload.update(name=name, pinned=pinned, name_keywords=entry.payload.get("keywords", []))
    _write_entry(store, run, entry)
    return _save(store, "rename", cluster_id=cluster_id, name=name, pinned=pinned)


def merge_clusters(store: VectorStore, into: int, source: int) -> dict[str, Any]:
    """Fold cluster ``source`` into ``into``; later runs keep them one cluster under ``into``."""
    if into == source:
        raise InputError("a cluster cannot be merged into itself")
    run, slot, target = _live_cluster(store, into)
    _, _, other = _live_cluster(store, source)
    _relabel(store, slot, source, {"cluster_id": into, "cluster_name": target.payload["name"]})
    a, b = int(target.payload.get("size", 0)), int(other.payload.get("size", 0))
    assert target.vector is not None and other.vector is not None
    target.vector = normalize((a * target.vector + b * other.vector)[None, :])[0]
    target.payload.update(size=a + b, parents=sorted({*target.payload.get("parents", []), source}))
    _write_entry(store, run, target)
    store.delete_cluster(run, source)
    return _save(store, "merge", into=into, **{"from": source})


def split_cluster(
    store: VectorStore, cluster_id: int, ticket_ids: Sequence[str], name: str
) -> dict[str, Any]:
    """Move ``ticket_ids`` (all in ``cluster_id``) into a new pinned cluster called ``name``."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("name must be 1-200 characters")
    ids = list(dict.fromkeys(str(t) for t in ticket_ids))
    if not ids:
        raise InputError("ticket_ids must name at least one ticket")
    run, slot, source = _live_cluster(store, cluster_id)
    records = store.get_points([point_id(t) for t in ids], with_vector=True)
    found = {str(r.payload.get("ticket_id")): r for r in records}
    missing = [t for t in ids if t not in found]
    if missing:
        raise NotFound(
            f"no ticket {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    outside = [t for t in ids if found[t].payload.get(slot_field(slot, "cluster_id")) != cluster_id]
    if outside:
        raise InputError(f"ticket {outside[0]!r} is not in cluster {cluster_id}")
    if len(ids) >= int(source.payload.get("size", 0)):
        raise InputError("a split must leave tickets behind; rename the cluster instead")
    meta = _meta(store)
    new_id = max(int(store.get_state().get("next_cluster_id", 0)), int(meta.get("next_cluster_id", 0)))
    _set_meta(store, {**meta, "next_cluster_id": new_id + 1})
    values = {"cluster_id": new_id, "cluster_name": name}
    store.set_payloads([(r.id, _both_slots(values)) for r in records])
    vectors = np.stack([r.vector for r in records if r.vector is not None])
    entry = {
        "cluster_id": new_id,
        "name": name,
        "name_keywords": [],
        "keywords": [],
        "pinned": True,
        "size": len(ids),
        "exemplars": ids[:5],
        "parents": [cluster_id],
        "born_run": run,
        "updated_run": run,
    }
    store.upsert_clusters(run, [entry], normalize(vectors.mean(axis=0, keepdims=True)))
    source.payload["size"] = int(source.payload.get("size", 0)) - len(ids)
    _write_entry(store, run, source)
    return _save(store, "split", cluster_id=new_id, name=name, ticket_ids=ids, **{"from": cluster_id})


def mark_not_outlier(store: VectorStore, ticket_id: str) -> dict[str, Any]:
    """A human says this ticket is not an outlier; every later run agrees."""
    record = store.get_ticket(ticket_id)
    if record is None:
        raise NotFound(f"no ticket {ticket_id!r}")
    store.set_payloads([(record.id, {NOT_OUTLIER: "no", **_both_slots({"is_outlier": False})})])
    return _save(store, "not_outlier", ticket_id=ticket_id)


def enforce_ticket_edits(store: VectorStore, slot: str) -> int:
    """After a switch: clear the outlier flag a run may have set on tickets a human cleared."""
    flt = Filter(must=(Match(NOT_OUTLIER, "no"), Match(slot_field(slot, "is_outlier"), True)))
    fixed = 0
    offset: str | None = None
    while True:
        records, offset = store.scroll_tickets(flt, limit=1024, offset=offset)
        store.set_payloads([(r.id, {slot_field(slot, "is_outlier"): False}) for r in records])
        fixed += len(records)
        if offset is None or not records:
            return fixed


def apply_edits(
    edits: Sequence[dict[str, Any]],
    point_ids: Sequence[str],
    vectors: np.ndarray,
    result: ClusterResult,
    lineage: Lineage,
) -> tuple[ClusterResult, Lineage]:
    """Re-apply merges and splits (oldest first) to a run's matched clusters.

    Works on stable ids: a merge sends every ticket of ``from`` to ``into``, a split sends its
    tickets to its cluster. Centroids and similarities of the resulting clusters are recomputed;
    lineage records each edit applied.
    """
    structural = sorted(
        (e for e in edits if e.get("type") in ("merge", "split")), key=lambda e: e["created_at"]
    )
    if not structural:
        return result, lineage
    stable = np.asarray(lineage.ids, dtype=np.int64)[result.labels]
    row_of = {pid: i for i, pid in enumerate(point_ids)}
    parents = {cid: list(p) for cid, p in zip(lineage.ids, lineage.parents, strict=True)}
    events = list(lineage.events)
    next_id = lineage.next_id
    split_from = {e["cluster_id"]: e["from"] for e in lineage.events if e["event"] == "split"}
    for edit in structural:
        if edit["type"] == "merge":
            into, source = int(edit["into"]), int(edit["from"])
            # the merged pair's tickets all carried ``into`` last run, so the pair comes back as
            # ``into`` plus clusters split off it (or, before the edit was first applied, ``source``)
            folded = [
                c
                for c in np.unique(stable).tolist()
                if c != into and (c == source or split_from.get(c) in (into, source))
            ]
            for cid in folded:
                stable[stable == cid] = into
                parents[into] = sorted({*parents.get(into, []), cid})
                events.append({"event": "merged", "cluster_id": cid, "into": into, "by": "edit"})
        else:
            cid = int(edit["cluster_id"])
            rows = [row_of[p] for p in (point_id(t) for t in edit["ticket_ids"]) if p in row_of]
            if rows:
                stable[rows] = cid
                parents.setdefault(cid, [int(edit["from"])])
                events.append({"event": "continued", "cluster_id": cid, "by": "edit"})
            next_id = max(next_id, cid + 1)
    present = set(np.unique(stable).tolist())
    events = [
        e for e in events if e.get("by") or e["event"] in ("died", "merged") or e["cluster_id"] in present
    ]
    new_result, order = _regroup(stable, vectors, result)
    new_lineage = Lineage(order, [parents.get(c, []) for c in order], events, next_id)
    return new_result, new_lineage


def _regroup(
    stable: np.ndarray, vectors: np.ndarray, result: ClusterResult
) -> tuple[ClusterResult, list[int]]:
    """Labels 0..K-1 (largest first) over stable ids, with centroids recomputed from the members."""
    ids, inverse, counts = np.unique(stable, return_inverse=True, return_counts=True)
    rank = np.argsort(-counts, kind="stable")
    position = np.empty_like(rank)
    position[rank] = np.arange(len(rank))
    labels = position[inverse]
    k = len(ids)
    member = sparse.csr_matrix(
        (np.ones(len(labels), dtype=np.float32), (labels, np.arange(len(labels)))), shape=(k, len(labels))
    )
    centroids = normalize(np.asarray(member @ vectors, dtype=np.float32))
    similarity = np.einsum("ij,ij->i", vectors, centroids[labels]).astype(np.float32)
    regrouped = ClusterResult(labels, centroids, similarity, result.noise, result.params, result.seconds)
    return regrouped, [int(ids[r]) for r in rank]


def _live_cluster(store: VectorStore, cluster_id: int) -> tuple[str, str, Record]:
    state = store.get_state()
    run, slot = state.get("current_run"), state.get("slot")
    entry = store.get_cluster(run, cluster_id) if run else None
    if run is None or slot is None or entry is None:
        raise NotFound(f"no cluster {cluster_id} in the current run")
    return run, slot, entry


def _relabel(store: VectorStore, slot: str, cluster_id: int, values: dict[str, Any]) -> None:
    """Set label ``values`` on every ticket of ``cluster_id`` in the live slot."""
    flt = label_filter(slot, cluster_id=cluster_id)
    offset: str | None = None
    pages: list[str] = []
    while True:  # collect first: relabelling cluster_id would move tickets out of the filter mid-scroll
        records, offset = store.scroll_tickets(flt, limit=1024, offset=offset)
        pages.extend(r.id for r in records)
        if offset is None or not records:
            break
    update = {slot_field(slot, k): v for k, v in values.items()}
    store.set_payloads([(pid, update) for pid in pages])


def _both_slots(values: dict[str, Any]) -> dict[str, Any]:
    return {slot_field(s, k): v for s in SLOTS for k, v in values.items()}


def _write_entry(store: VectorStore, run: str, entry: Record) -> None:
    assert entry.vector is not None
    store.upsert_clusters(run, [entry.payload], np.asarray(entry.vector, dtype=np.float32)[None, :])


def _save(store: VectorStore, kind: str, **fields: Any) -> dict[str, Any]:
    edit = {
        "edit_id": "edit-" + secrets.token_hex(6),
        "type": kind,
        "created_at": utc_now_precise(),
        **fields,
    }
    store.save_record(EDIT_KIND, edit["edit_id"], edit)
    _set_meta(store, {**_meta(store), "edited_at": edit["created_at"]})  # ingest reloads the catalogue
    return edit


def edits_meta(store: VectorStore) -> dict[str, Any]:
    """``edited_at`` (the last edit) and ``next_cluster_id`` (past the ids splits took).

    Kept apart from the service state on purpose: only a recluster writes the state, so an edit's
    read-modify-write can never undo a run's switch that landed in between.
    """
    return _meta(store)


def _meta(store: VectorStore) -> dict[str, Any]:
    return store.get_record(META_KIND, "edits") or {}  # a point lookup: ingest asks per batch


def _set_meta(store: VectorStore, meta: dict[str, Any]) -> None:
    store.save_record(META_KIND, "edits", meta)
