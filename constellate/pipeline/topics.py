"""Topics stage: the plan's clusters grouped into topics with stable ids, human moves replayed.

A full run groups its clusters afresh (:func:`constellate.topics.group_clusters`) and matches the
topics to the live ones on the sample, as clusters are matched (a ticket's topic is its cluster's),
so topic ids are stable and topics have lineage events of their own. An incremental run keeps the
live topics; a born cluster joins the topic whose centroid is nearest. A human's move of a cluster
into a topic is replayed by every later run while that topic exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from constellate.identity import match_clusters
from constellate.pipeline.plan import Plan
from constellate.pipeline.sample import Sample
from constellate.store.base import Record
from constellate.topics import group_clusters, topic_centroids


def sample_sizes(plan: Plan, sample: Sample) -> np.ndarray:
    """Sample tickets per cluster row."""
    row = plan.row_of()
    labels = [row[plan.sample_labels[pid]] for pid in sample.ids if plan.sample_labels.get(pid) in row]
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(plan.cluster_ids))


def fit_topics(
    plan: Plan,
    sample: Sample,
    clusters: list[Record],
    topics: list[Record],
    edits: list[dict[str, Any]],
    reserve: Callable[[int], int],
) -> None:
    """Group the plan's clusters into topics (full run) and give them stable ids."""
    k = len(plan.cluster_ids)
    sizes = sample_sizes(plan, sample)
    index = group_clusters(plan.centroids, sizes)
    n = int(index.max()) + 1 if k else 0
    centroids = topic_centroids(plan.centroids, sizes, index, n)
    row = plan.row_of()
    labels = np.array([row[plan.sample_labels[pid]] for pid in sample.ids], dtype=np.int64)
    topic_of_cluster = {int(r.payload["cluster_id"]): r.payload.get("topic_id") for r in clusters}
    prev = np.array(
        [
            int(t) if (t := topic_of_cluster.get(int(c))) is not None and c >= 0 else -1
            for c in sample.prev_labels
        ],
        dtype=np.int64,
    )
    prev_centroids = {int(r.payload["cluster_id"]): r.vector for r in topics if r.vector is not None}
    lineage = match_clusters(index[labels], centroids, prev, prev_centroids, reserve(n + 1))
    topic_of = [int(lineage.ids[index[r]]) for r in range(k)]
    _replay_moves(plan, topic_of, edits, set(lineage.ids))
    _set(plan, topic_of, sizes, lineage.parents, lineage.ids)
    plan.had_topics = bool(topics)
    plan.lineage_events += [{**e, "level": "topic"} for e in lineage.events] if topics else []


def keep_topics(
    plan: Plan,
    sample: Sample,
    clusters: list[Record],
    topics: list[Record],
    edits: list[dict[str, Any]],
    reserve: Callable[[int], int],
) -> None:
    """The live topics kept (incremental run); a cluster without one joins the nearest topic."""
    if not topics:  # a catalogue from before topics: group this run's clusters once
        fit_topics(plan, sample, clusters, topics, edits, reserve)
        return
    ids = [int(r.payload["cluster_id"]) for r in topics]
    vectors = np.stack([np.asarray(r.vector, dtype=np.float32) for r in topics])
    live = {int(r.payload["cluster_id"]): r.payload.get("topic_id") for r in clusters}
    topic_of = []
    for r, cid in enumerate(plan.cluster_ids):
        tid = live.get(cid)
        if tid is None or int(tid) not in ids:
            tid = ids[int(np.argmax(vectors @ plan.centroids[r]))]
        topic_of.append(int(tid))
    parents = [list(r.payload.get("parents", [])) for r in topics]
    _set(plan, topic_of, sample_sizes(plan, sample), parents, ids)
    plan.had_topics = True


def _replay_moves(plan: Plan, topic_of: list[int], edits: list[dict[str, Any]], present: set[int]) -> None:
    """Human moves, oldest first: the cluster goes to the topic while both still exist."""
    row = plan.row_of()
    for edit in sorted((e for e in edits if e.get("type") == "move"), key=lambda e: str(e["created_at"])):
        cid, tid = int(edit["cluster_id"]), int(edit["topic_id"])
        if cid in row and tid in present:
            topic_of[row[cid]] = tid


def _set(
    plan: Plan, topic_of: list[int], sizes: np.ndarray, parents: list[list[int]], ids: list[int]
) -> None:
    """Store the topics that hold at least one cluster on the plan (ids in first-seen order)."""
    order = list(dict.fromkeys(t for t in ids if t in set(topic_of)))
    where = {t: i for i, t in enumerate(order)}
    index = np.array([where[t] for t in topic_of], dtype=np.int64)
    plan.topic_ids = order
    plan.topic_of = topic_of
    plan.topic_centroids = topic_centroids(plan.centroids, sizes, index, len(order))
    by_id = dict(zip(ids, parents, strict=True))
    plan.topic_parents = [by_id.get(t, []) for t in order]


def topic_view(plan: Plan) -> Plan:
    """The plan seen one level up (topics as its clusters), for the name stage."""
    row = plan.row_of()
    topic_of = {cid: plan.topic_of[r] for cid, r in row.items()}
    return replace(
        plan,
        cluster_ids=list(plan.topic_ids),
        centroids=plan.topic_centroids,
        regular=np.ones(len(plan.topic_ids), dtype=bool),
        sample_labels={pid: topic_of[c] for pid, c in plan.sample_labels.items() if c in topic_of},
        lineage_events=[
            {k: v for k, v in e.items() if k != "level"}
            for e in plan.lineage_events
            if e.get("level") == "topic"
        ],
        parents=list(plan.topic_parents),
    )
