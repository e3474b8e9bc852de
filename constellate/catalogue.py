"""What readers ask of the live run, each bounded by its answer: names, clusters, outliers, the map.

Cluster names live in the catalogue, not on tickets (a rename touches no ticket), so every reader
resolves them here; :class:`NameCache` keeps one process's copy, reloaded when the run or an edit
changes it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from constellate.edits import edits_for, edits_meta
from constellate.labels import RANK, label_filter, slot_field, ticket_view
from constellate.store.base import VectorStore
from constellate.tickets import point_id


@dataclass
class Live:
    """The live run as one reader sees it."""

    state: dict[str, Any]
    names: dict[int, str] = field(default_factory=dict)  # clusters' and topics' names
    topics: dict[int, int] = field(default_factory=dict)  # cluster id -> its topic's id
    levels: dict[int, str] = field(default_factory=dict)  # id -> "cluster" | "topic"
    edited_at: Any = None  # the edit clock read with ``state``

    def ids(self, level: str) -> set[int]:
        """The live clusters' (or topics') ids."""
        return {i for i, lv in self.levels.items() if lv == level}

    @property
    def key(self) -> tuple[Any, Any]:
        """What every answer derived from the live run depends on: the run and the edit clock (an
        edit writes its changes before it moves the clock, so an answer built after reading this
        key is at least as new as it)."""
        return (self.run_id, self.edited_at)

    @property
    def run_id(self) -> str | None:
        return self.state.get("current_run")

    @property
    def slot(self) -> str | None:
        return self.state.get("slot")

    def children(self, topic_id: int) -> tuple[int, ...]:
        """The live clusters of a topic."""
        return tuple(sorted(c for c, t in self.topics.items() if t == topic_id))

    def view(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A stored ticket as readers see it."""
        return ticket_view(payload, self.slot, self.names, self.topics, self.state.get("first_run"))


class NameCache:
    """Cluster names of the live run, reloaded when the run switches or a human edits the catalogue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, Any] | None = None
        self._names: dict[int, str] = {}
        self._topics: dict[int, int] = {}
        self._levels: dict[int, str] = {}

    def live(self, store: VectorStore) -> Live:
        """The state and the live names (two point reads when nothing changed)."""
        state = store.get_state()
        key = (state.get("current_run"), edits_meta(store).get("edited_at"))
        with self._lock:
            if key != self._key:
                records = store.list_clusters(key[0], level=None)
                self._names = {int(r.payload["cluster_id"]): str(r.payload.get("name", "")) for r in records}
                self._topics = {
                    int(r.payload["cluster_id"]): int(r.payload["topic_id"])
                    for r in records
                    if r.payload.get("level", "cluster") == "cluster"
                    and r.payload.get("topic_id") is not None
                }
                self._levels = {
                    int(r.payload["cluster_id"]): r.payload.get("level", "cluster") for r in records
                }
                self._key = key
            return Live(state, self._names, self._topics, self._levels, key[1])


def cluster_summaries(store: VectorStore, live: Live, level: str = "cluster") -> list[dict[str, Any]]:
    """The live catalogue at ``level`` (``cluster`` or ``topic``), largest first: its entries read,
    growth and history as the run counted them."""
    records = store.list_clusters(live.run_id, level=level)
    return sorted((_summary(r.payload) for r in records), key=lambda c: -c["size"])


def cluster_detail(store: VectorStore, live: Live, cluster_id: int, runs: int = 50) -> dict[str, Any] | None:
    """One live cluster with exemplar tickets and lineage (events of the last ``runs`` runs, and
    the human edits that touched it)."""
    record = store.get_cluster(live.run_id, cluster_id)
    if record is None:
        return None
    payload = record.payload
    exemplars = store.get_points([point_id(t) for t in payload.get("exemplars", [])])
    lineage = []
    for run in reversed(store.list_runs(limit=runs)):
        for event in run.get("events", []):
            if cluster_id in (event.get("cluster_id"), event.get("from"), event.get("into")):
                lineage.append({"run_id": run["run_id"], "at": run.get("finished_at"), **event})
    for edit in reversed(edits_for(store, cluster_id)):
        lineage.append({"event": f"edit:{edit['type']}", "at": edit["created_at"], **edit})
    lineage.sort(key=lambda e: str(e.get("at") or ""))
    topic = payload.get("topic_id")
    parent = store.get_cluster(live.run_id, int(topic)) if topic is not None else None
    children = [store.get_cluster(live.run_id, int(c)) for c in payload.get("children", [])]
    return {
        **_summary(payload),
        "exemplars": [live.view(r.payload) for r in exemplars],
        "parents": payload.get("parents", []),
        "born_run": payload.get("born_run"),
        "lineage": lineage,
        "topic": _summary(parent.payload) if parent is not None else None,
        "clusters": sorted(
            (_summary(c.payload) for c in children if c is not None), key=lambda c: -c["size"]
        ),
    }


def top_outliers(store: VectorStore, live: Live, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` live outliers with the highest scores (ordered and limited by the engine)."""
    if live.slot is None:
        return []
    records, _ = store.scroll_tickets(
        label_filter(live.slot, is_outlier=True),
        limit=limit,
        order_by="-" + slot_field(live.slot, RANK),
    )
    return [live.view(r.payload) for r in records]


def map_points(store: VectorStore, live: Live, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """The live run's map sample (its own small collection): total placed, and up to ``limit`` points."""
    if live.run_id is None:
        return 0, []
    run = store.get_run(live.run_id) or {}
    return int(run.get("map_points", 0)), store.list_map(live.run_id, limit)


def _summary(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster_id": int(payload["cluster_id"]),
        "name": payload.get("name", ""),
        "keywords": payload.get("keywords", []),
        "size": int(payload.get("size", 0)),
        "pinned": bool(payload.get("pinned", False)),
        "growth_24h": int(payload.get("growth_24h", 0)),
        "growth_7d": int(payload.get("growth_7d", 0)),
        "history": payload.get("history", []),
        "level": payload.get("level", "cluster"),
        "topic_id": payload.get("topic_id"),
        "children": payload.get("children", []),
    }
