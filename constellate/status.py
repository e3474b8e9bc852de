"""A summary of what the store holds."""

from __future__ import annotations

from typing import Any

from constellate.store.base import Filter, Match, VectorStore


def store_status(store: VectorStore) -> dict[str, Any]:
    """``{"tickets", "clusters", "outliers", "last_run"}`` read from the store."""
    runs = store.list_runs(limit=1)
    return {
        "tickets": store.count(),
        "clusters": len(store.list_clusters()),
        "outliers": store.count(Filter(must=(Match("is_outlier", True),))),
        "last_run": runs[0] if runs else None,
    }
