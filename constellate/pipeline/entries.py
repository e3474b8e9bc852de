"""The catalogue entries a run stores: its clusters and topics with counted sizes, growth and history."""

from __future__ import annotations

from typing import Any

import numpy as np

from constellate.pipeline.counts import Counts
from constellate.pipeline.plan import Plan
from constellate.store.base import VectorStore

HISTORY_RUNS = 12  # sizes kept per cluster for the catalogue's sparkline


def catalogue_entries(
    store: VectorStore, plan: Plan, total: Counts
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Cluster and topic entries with their counted sizes, growth and size history (computed once
    per run, so the catalogue route only reads it); clusters that ended up empty are left out, and
    topics left without clusters."""
    runs = [r for r in store.list_runs(limit=HISTORY_RUNS * 2) if r.get("status") == "succeeded"]
    earlier = [r.get("sizes") or {} for r in reversed(runs[: HISTORY_RUNS - 1])]

    def counted(entry: dict[str, Any], size: int, day: int, week: int) -> dict[str, Any]:
        cid = int(entry["cluster_id"])
        history = [int(sizes[str(cid)]) for sizes in earlier if str(cid) in sizes] + [size]
        return {**entry, "size": size, "growth_24h": day, "growth_7d": week, "history": history}

    entries, vectors = [], []
    children: dict[int, list[int]] = {}
    for i, entry in enumerate(plan.catalogue):
        cid = int(entry["cluster_id"])
        size = total.sizes.get(cid, 0)
        if size == 0:
            continue
        topic = plan.topic_of[i] if plan.topic_of else None
        entry = {
            **counted(entry, size, total.day.get(cid, 0), total.week.get(cid, 0)),
            "regular": bool(plan.regular[i]),
            "level": "cluster",
            "topic_id": topic,
        }
        if not entry["exemplars"]:  # a cluster only humans put tickets in: show those
            pids = [p for p, c in plan.overrides.items() if c == entry["cluster_id"]][:5]
            entry["exemplars"] = [
                str(r.payload.get("ticket_id")) for r in store.get_points(pids, fields=["ticket_id"])
            ]
        if topic is not None:
            children.setdefault(int(topic), []).append(cid)
        entries.append(entry)
        vectors.append(plan.centroids[i])
    for t, entry in enumerate(plan.topic_catalogue):
        members = children.get(int(entry["cluster_id"]), [])
        if not members:
            continue
        sums = [
            sum(e[key] for e in entries if e["cluster_id"] in members)
            for key in ("size", "growth_24h", "growth_7d")
        ]
        entries.append(
            {**counted(entry, *sums), "level": "topic", "children": sorted(members), "regular": True}
        )
        vectors.append(plan.topic_centroids[t])
    dim = plan.centroids.shape[1]
    return entries, np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
