"""Human edits: rename (and pin) a cluster, merge two, split tickets off, mark a ticket not an outlier.

An edit is validated against the live catalogue, stored as a record *first*, then applied to the
live labels and catalogue (:func:`apply_to_live`, idempotent). A run replays every stored edit
on its own result (:func:`replay_edits`), and after its switch applies again the edits stored since
it read them. Either the run sees the record or the edit sees the switch, so an edit made at any
moment is in force after every later switch (docs/architecture.md, "Edits, runs and the lease").
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from constellate.embedding import normalize
from constellate.exceptions import Conflict, InputError, NotFound
from constellate.identity import Lineage
from constellate.ids import reserve_ids
from constellate.labels import NOT_OUTLIER, SLOTS, label_filter, slot_field
from constellate.store.base import Filter, Match, MatchAny, Record, VectorStore
from constellate.tickets import point_id, utc_now_precise

EDIT_KIND = "edit"
META_KIND = "edit_meta"
__all__ = [
    "EDIT_KIND",
    "NOT_OUTLIER",
    "EditEffect",
    "apply_to_live",
    "edits_for",
    "edits_meta",
    "enforce_ticket_edits",
    "list_edits",
    "mark_not_outlier",
    "merge_clusters",
    "move_cluster",
    "rename_cluster",
    "replay_edits",
    "split_cluster",
]


def list_edits(store: VectorStore, limit: int | None = None) -> list[dict[str, Any]]:
    """Stored edits, newest first: every one (a run replays them all), or the newest ``limit``."""
    return store.list_records(EDIT_KIND, limit=limit)


def edits_for(store: VectorStore, cluster_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The newest edits that touch ``cluster_id`` (for its lineage; filtered by the engine)."""
    touches = tuple(Match(key, cluster_id) for key in ("cluster_id", "into", "from"))
    return store.list_records(EDIT_KIND, limit=limit, where=Filter(should=touches))


def _valid_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("name must be 1-200 characters, not only spaces")
    return name


def rename_cluster(store: VectorStore, cluster_id: int, name: str, pinned: bool = True) -> dict[str, Any]:
    """Give a cluster a human name; pinned names are kept by every later run."""
    name = _valid_name(name)
    _live_cluster(store, cluster_id)
    return _record_and_apply(store, "rename", cluster_id=cluster_id, name=name, pinned=pinned)


def merge_clusters(store: VectorStore, into: int, source: int) -> dict[str, Any]:
    """Fold cluster ``source`` into ``into``; later runs keep them one cluster under ``into``."""
    if into == source:
        raise InputError("a cluster cannot be merged into itself")
    _live_cluster(store, into, level="cluster")
    _live_cluster(store, source, level="cluster")
    return _record_and_apply(store, "merge", into=into, **{"from": source})


def move_cluster(store: VectorStore, cluster_id: int, topic_id: int) -> dict[str, Any]:
    """Put cluster ``cluster_id`` into topic ``topic_id``; later runs keep it there while the topic lives."""
    _, _, entry = _live_cluster(store, cluster_id, level="cluster")
    _live_cluster(store, topic_id, level="topic")
    if entry.payload.get("topic_id") == topic_id:
        raise Conflict(f"cluster {cluster_id} is in topic {topic_id} already")
    return _record_and_apply(store, "move", cluster_id=cluster_id, topic_id=topic_id)


def split_cluster(
    store: VectorStore, cluster_id: int, ticket_ids: Sequence[str], name: str
) -> dict[str, Any]:
    """Move ``ticket_ids`` (all in ``cluster_id``) into a new pinned cluster called ``name``."""
    name = _valid_name(name)
    ids = list(dict.fromkeys(str(t) for t in ticket_ids))
    if not ids:
        raise InputError("ticket_ids must name at least one ticket")
    _, slot, source = _live_cluster(store, cluster_id, level="cluster")
    records = store.get_points(
        [point_id(t) for t in ids], fields=["ticket_id", slot_field(slot, "cluster_id")]
    )
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
    new_id = reserve_ids(store, 1)
    return _record_and_apply(
        store, "split", cluster_id=new_id, name=name, ticket_ids=ids, **{"from": cluster_id}
    )


def mark_not_outlier(store: VectorStore, ticket_id: str) -> dict[str, Any]:
    """A human says this ticket is not an outlier; every later run agrees."""
    if store.get_ticket(ticket_id) is None:
        raise NotFound(f"no ticket {ticket_id!r}")
    return _record_and_apply(store, "not_outlier", ticket_id=ticket_id)


def apply_to_live(store: VectorStore, edit: dict[str, Any]) -> str | None:
    """Make ``edit`` true of the live labels, catalogue and map; returns the live run it was applied
    to. Idempotent, and harmless when its clusters are gone (a later run retired them): the runs'
    replay still carries the edit."""
    state = store.get_state()
    run, slot = state.get("current_run"), state.get("slot")
    _apply(store, edit, run, slot)
    return run


def _apply(store: VectorStore, edit: dict[str, Any], run: str | None, slot: str | None) -> None:
    kind = edit["type"]
    if kind == "not_outlier":
        pid = point_id(edit["ticket_id"])
        store.set_payloads(
            [(pid, {NOT_OUTLIER: "no", **{slot_field(s, "is_outlier"): False for s in SLOTS}})]
        )
        if run:
            store.update_map_where(
                run, Filter(must=(Match("ticket_id", edit["ticket_id"]),)), {"is_outlier": False}
            )
        return
    if run is None or slot is None:
        return
    if kind == "rename":
        entry = store.get_cluster(run, int(edit["cluster_id"]))
        if entry is not None:
            store.set_cluster_fields(
                run,
                int(edit["cluster_id"]),
                {
                    "name": edit["name"],
                    "pinned": edit["pinned"],
                    "name_keywords": entry.payload.get("keywords", []),
                },
            )
    elif kind == "merge":
        _apply_merge(store, run, slot, int(edit["into"]), int(edit["from"]))
    elif kind == "split":
        _apply_split(store, run, slot, edit)
    elif kind == "move":
        _apply_move(store, run, int(edit["cluster_id"]), int(edit["topic_id"]))


def _apply_merge(store: VectorStore, run: str, slot: str, into: int, source: int) -> None:
    target = store.get_cluster(run, into)
    if target is None:
        return  # a later run retired it
    # both slots: an incremental run's target slot must already agree with the live one. Labels
    # first and even when the source entry is gone (applied before): a copy between the slots may
    # have written the source's id back into one of them since
    for s in SLOTS:
        store.set_payload_where(label_filter(s, cluster_id=source), {slot_field(s, "cluster_id"): into})
    other = store.get_cluster(run, source)
    if other is None or target.vector is None or other.vector is None:
        return
    a, b = int(target.payload.get("size", 0)), int(other.payload.get("size", 0))
    target.vector = normalize((a * target.vector + b * other.vector)[None, :])[0]
    target.payload.update(
        size=a + b,
        parents=sorted({*target.payload.get("parents", []), source}),
        **{
            g: int(target.payload.get(g, 0)) + int(other.payload.get(g, 0))
            for g in ("growth_24h", "growth_7d")
        },
    )
    _write_entry(store, run, target)
    store.delete_cluster(run, source)
    moved = {g: int(other.payload.get(g, 0)) for g in ("size", "growth_24h", "growth_7d")}
    _set_children(
        store, run, other.payload.get("topic_id"), remove=source, delta={g: -v for g, v in moved.items()}
    )
    _set_children(store, run, target.payload.get("topic_id"), delta=moved)
    store.update_map_where(run, Filter(must=(Match("cluster_id", source),)), {"cluster_id": into})


def _apply_split(store: VectorStore, run: str, slot: str, edit: dict[str, Any]) -> None:
    new_id, source_id = int(edit["cluster_id"]), int(edit["from"])
    key = slot_field(slot, "cluster_id")
    keys = [slot_field(s, "cluster_id") for s in SLOTS]
    records = store.get_points([point_id(t) for t in edit["ticket_ids"]], with_vector=True, fields=keys)
    moving = [r for r in records if r.payload.get(key) != new_id]
    if not records:
        return
    stale = [r for r in records if any(r.payload.get(k) != new_id for k in keys)]
    if stale:  # both slots, as for a merge (either may hold an older id: see _apply_merge)
        store.set_payload_ids([r.id for r in stale], {k: new_id for k in keys})
    entry = store.get_cluster(run, new_id)
    source = store.get_cluster(run, source_id)
    topic = source.payload.get("topic_id") if source is not None else None
    if entry is None:
        vectors = np.stack([r.vector for r in records if r.vector is not None])
        new_entry = {
            "cluster_id": new_id,
            "name": edit["name"],
            "name_keywords": [],
            "keywords": [],
            "pinned": True,
            "size": len(records),
            "exemplars": list(edit["ticket_ids"][:5]),
            "parents": [source_id],
            "born_run": run,
            "updated_run": run,
            "regular": False,  # takes only the tickets a human put there
            "level": "cluster",
            "topic_id": topic,  # it stays in its source's topic
        }
        store.upsert_clusters(run, [new_entry], normalize(vectors.mean(axis=0, keepdims=True)))
        _set_children(store, run, topic, add=new_id)
    else:
        store.set_cluster_fields(run, new_id, {"size": int(entry.payload.get("size", 0)) + len(moving)})
    left = sum(1 for r in moving if r.payload.get(key) == source_id)
    if source is not None and left:
        store.set_cluster_fields(run, source_id, {"size": max(0, int(source.payload.get("size", 0)) - left)})
    store.update_map_where(
        run, Filter(must=(MatchAny("ticket_id", tuple(edit["ticket_ids"])),)), {"cluster_id": new_id}
    )


def _apply_move(store: VectorStore, run: str, cluster_id: int, topic_id: int) -> None:
    cluster, topic = store.get_cluster(run, cluster_id), store.get_cluster(run, topic_id)
    if cluster is None or topic is None or topic.payload.get("level") != "topic":
        return  # a later run retired one of them
    old = cluster.payload.get("topic_id")
    if old == topic_id:
        return
    store.set_cluster_fields(run, cluster_id, {"topic_id": topic_id})
    moved = {g: int(cluster.payload.get(g, 0)) for g in ("size", "growth_24h", "growth_7d")}
    _set_children(store, run, old, remove=cluster_id, delta={g: -v for g, v in moved.items()})
    _set_children(store, run, topic_id, add=cluster_id, delta=moved)


def _set_children(
    store: VectorStore,
    run: str,
    topic_id: Any,
    add: int | None = None,
    remove: int | None = None,
    delta: dict[str, int] | None = None,
) -> None:
    """Keep a live topic's entry true to an edit: its clusters, and its counts by ``delta``."""
    entry = store.get_cluster(run, int(topic_id)) if topic_id is not None else None
    if entry is None or entry.payload.get("level") != "topic":
        return
    children = set(entry.payload.get("children", [])) - {remove} | ({add} if add is not None else set())
    fields = {g: max(0, int(entry.payload.get(g, 0)) + d) for g, d in (delta or {}).items()}
    store.set_cluster_fields(
        run, int(topic_id), {**fields, "children": sorted(c for c in children if c is not None)}
    )


def enforce_ticket_edits(store: VectorStore, slot: str) -> int:
    """After a switch: clear the outlier flag a run may have set on tickets a human cleared (in the
    live ``slot``, and in the other one, which the next run starts from)."""
    fixed = 0
    for s in (slot, *(x for x in SLOTS if x != slot)):
        flt = Filter(must=(Match(NOT_OUTLIER, "no"), Match(slot_field(s, "is_outlier"), True)))
        found = store.count(flt)
        if found:
            store.set_payload_where(flt, {slot_field(s, "is_outlier"): False})
        fixed += found if s == slot else 0
    return fixed


@dataclass
class EditEffect:
    """What the stored edits do to one run's clusters (stable ids).

    ``fold`` maps a cluster id to the one a merge folded it into; ``overrides`` sends tickets (point
    ids) a split moved to their cluster; ``renames`` are the names humans gave (with pin flags).
    """

    fold: dict[int, int] = field(default_factory=dict)
    overrides: dict[str, int] = field(default_factory=dict)
    renames: dict[int, tuple[str, bool]] = field(default_factory=dict)
    parents: dict[int, list[int]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0

    def resolve(self, cluster_id: int) -> int:
        """The id ``cluster_id`` ends up under after every merge."""
        seen = {cluster_id}
        while cluster_id in self.fold:
            cluster_id = self.fold[cluster_id]
            if cluster_id in seen:  # a merge back and forth: the latest target wins
                break
            seen.add(cluster_id)
        return cluster_id


def replay_edits(edits: Iterable[dict[str, Any]], lineage: Lineage, present: Iterable[int]) -> EditEffect:
    """The effect of ``edits`` (any order; replayed oldest first) on a run's matched clusters.

    A merge's pair carried the target id after the edit, so a later run sees it as the target plus
    clusters that split off it (or, before the edit was first applied, the source): those fold into
    the target. A split sends its tickets to its cluster.
    """
    effect = EditEffect(next_id=lineage.next_id)
    split_from = {e["cluster_id"]: e["from"] for e in lineage.events if e["event"] == "split"}
    ids = set(present)
    for edit in sorted(edits, key=lambda e: str(e.get("created_at", ""))):
        kind = edit.get("type")
        if kind == "merge":
            into, source = int(edit["into"]), int(edit["from"])
            candidates = ids | set(effect.overrides.values())
            for cid in sorted(candidates):
                if cid != into and (cid == source or split_from.get(cid) in (into, source)):
                    effect.fold[cid] = into
                    effect.parents.setdefault(into, []).append(cid)
                    effect.events.append({"event": "merged", "cluster_id": cid, "into": into, "by": "edit"})
        elif kind == "split":
            cid = int(edit["cluster_id"])
            for ticket in edit["ticket_ids"]:
                effect.overrides[point_id(str(ticket))] = cid
            effect.parents.setdefault(cid, [int(edit["from"])])
            effect.events.append({"event": "continued", "cluster_id": cid, "by": "edit"})
            effect.next_id = max(effect.next_id, cid + 1)
        elif kind == "rename":
            effect.renames[int(edit["cluster_id"])] = (str(edit["name"]), bool(edit.get("pinned", True)))
    return effect


def _live_cluster(store: VectorStore, cluster_id: int, level: str | None = None) -> tuple[str, str, Record]:
    """The live run, its slot and the catalogue entry ``cluster_id`` (a cluster or a topic; ``level``:
    only that level)."""
    state = store.get_state()
    run, slot = state.get("current_run"), state.get("slot")
    entry = store.get_cluster(run, cluster_id) if run else None
    if run is None or slot is None or entry is None:
        raise NotFound(f"no cluster {cluster_id} in the current run")
    found = entry.payload.get("level", "cluster")
    if level is not None and found != level:
        what = "a topic" if found == "topic" else "a cluster"
        raise Conflict(f"{cluster_id} is {what}; this edit needs a {level}")
    return run, slot, entry


def _write_entry(store: VectorStore, run: str, entry: Record) -> None:
    assert entry.vector is not None
    store.upsert_clusters(run, [entry.payload], np.asarray(entry.vector, dtype=np.float32)[None, :])


def _record_and_apply(store: VectorStore, kind: str, **fields: Any) -> dict[str, Any]:
    """Store the edit, mark the catalogue edited (ingest reloads it), then apply it to the live labels.

    The record comes first: a run that switches after this point replays it after its switch.
    Once applied, the record says to which live run (``applied_to``): an incremental run, which
    keeps the live catalogue instead of replaying edits, counts only those as already in it.
    """
    edit = {
        "edit_id": "edit-" + secrets.token_hex(6),
        "type": kind,
        "created_at": utc_now_precise(),
        **fields,
    }
    store.save_record(EDIT_KIND, edit["edit_id"], edit)
    mark_applied(store, edit, apply_to_live(store, edit))
    mark_edited(store, edit["created_at"])
    return edit


def mark_applied(store: VectorStore, edit: dict[str, Any], run: str | None) -> None:
    """Record that ``edit``'s effect is in ``run``'s catalogue and labels (after applying it there)."""
    if run is not None and edit.get("applied_to") != run:
        edit["applied_to"] = run
        store.save_record(EDIT_KIND, edit["edit_id"], {k: v for k, v in edit.items() if k != "kind"})


def mark_edited(store: VectorStore, when: str) -> None:
    """Tell ingest-time labellers the live catalogue changed (they reload it)."""
    store.save_record(META_KIND, "clock", {"edited_at": when})


def edits_meta(store: VectorStore) -> dict[str, Any]:
    """``edited_at``: when the live catalogue was last edited (a point lookup: ingest asks per batch)."""
    return store.get_record(META_KIND, "clock") or {}
