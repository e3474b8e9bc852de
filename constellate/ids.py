"""Cluster ids: one counter shared by runs (born and split clusters) and human splits.

Ids are reserved atomically (a compare-and-set on one record), so a run and a split made while it
runs can never hand out the same id.
"""

from __future__ import annotations

from constellate.exceptions import StoreError
from constellate.store.base import VectorStore

IDS_KIND = "ids"
_RECORD = "clusters"


def reserve_ids(store: VectorStore, count: int, at_least: int = 0) -> int:
    """Reserve ``count`` consecutive cluster ids and return the first (never below ``at_least``)."""
    for _ in range(100):
        current = store.get_record(IDS_KIND, _RECORD) or {}
        version = int(current.get("version", 0))
        first = max(
            int(current.get("next_cluster_id", 0)), at_least, _legacy_next(store) if not version else 0
        )
        if store.swap_record(IDS_KIND, _RECORD, version, {"next_cluster_id": first + count}):
            return first
    raise StoreError("could not reserve cluster ids: too much contention")


def next_free_id(store: VectorStore) -> int:
    """The first id not yet handed out (for reporting)."""
    current = store.get_record(IDS_KIND, _RECORD) or {}
    return max(int(current.get("next_cluster_id", 0)), _legacy_next(store))


def _legacy_next(store: VectorStore) -> int:
    """Stores written before the shared counter kept the next id in the state and the edit meta."""
    meta = store.get_record("edit_meta", "edits") or {}
    return max(int(store.get_state().get("next_cluster_id", 0)), int(meta.get("next_cluster_id", 0)))
