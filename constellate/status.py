"""A summary of what the store holds."""

from __future__ import annotations

from typing import Any

from constellate.labels import label_filter
from constellate.store.base import VectorStore


def store_status(store: VectorStore) -> dict[str, Any]:
    """``{"tickets", "clusters", "outliers", "current_run", "last_run"}`` read from the store.

    ``clusters`` and ``outliers`` are those of the current (last completed) run; ``last_run`` is the
    newest run record whatever its status.
    """
    state = store.get_state()
    runs = store.list_runs(limit=1)
    slot = state.get("slot")
    return {
        "tickets": store.count(),
        "clusters": len(store.list_clusters(state.get("current_run"))),
        "outliers": store.count(label_filter(slot, is_outlier=True)) if slot else 0,
        "current_run": state.get("current_run"),
        "last_run": runs[0] if runs else None,
    }
