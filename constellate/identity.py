"""Keep cluster ids stable across runs: match a run's clusters to the previous run's, record lineage."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

MIN_OVERLAP = 0.3  # Jaccard of members for a match...
MIN_CENTROID_SIM = 0.9  # ...or a centroid this close (members may have changed a lot)
MAJORITY = 0.5  # share of members that makes a split's parent or a merge's target


@dataclass
class Lineage:
    """How this run's clusters relate to the previous run's.

    ``ids[i]`` is the stable id of new cluster ``i``; ``parents[i]`` lists previous ids it descends
    from; ``events`` are ``{"event": born|continued|split|merged|died, "cluster_id": ..., ...}``.
    """

    ids: list[int]
    parents: list[list[int]]
    events: list[dict[str, object]] = field(default_factory=list)
    next_id: int = 0


def match_clusters(
    new_labels: np.ndarray,
    new_centroids: np.ndarray,
    prev_labels: np.ndarray,
    prev_centroids: dict[int, np.ndarray],
    next_id: int = 0,
) -> Lineage:
    """Match new clusters (labels 0..K-1 per ticket) to previous ones (stable ids per ticket, -1 = none).

    Score = member Jaccard + a small centroid-similarity term, solved as an assignment problem
    (Hungarian); a pair counts as the same cluster when its Jaccard ≥ 0.3 or its centroids have
    cosine ≥ 0.9. Unmatched new clusters are ``split`` (most members came from one previous cluster
    that continued elsewhere) or ``born``; unmatched previous clusters are ``merged`` (most members
    went to one new cluster) or ``died``.
    """
    k = new_centroids.shape[0]
    prev_ids = sorted(set(prev_centroids) | {int(x) for x in np.unique(prev_labels) if x >= 0})
    next_id = max([next_id, *[p + 1 for p in prev_ids]])
    if not prev_ids:
        ids = list(range(next_id, next_id + k))
        events: list[dict[str, object]] = [{"event": "born", "cluster_id": i} for i in ids]
        return Lineage(ids, [[] for _ in ids], events, next_id + k)

    col = {p: j for j, p in enumerate(prev_ids)}
    known = prev_labels >= 0
    counts = np.zeros((k, len(prev_ids)), dtype=np.int64)
    np.add.at(
        counts, (new_labels[known], np.array([col[int(p)] for p in prev_labels[known]], dtype=np.int64)), 1
    )
    new_sizes = np.bincount(new_labels, minlength=k)
    prev_sizes = counts.sum(axis=0)
    union = new_sizes[:, None] + prev_sizes[None, :] - counts
    jaccard = np.divide(counts, union, out=np.zeros(counts.shape, dtype=float), where=union > 0)
    sims = np.zeros_like(jaccard)
    for j, p in enumerate(prev_ids):
        if p in prev_centroids:
            sims[:, j] = new_centroids @ prev_centroids[p]
    score = jaccard + 0.1 * np.clip(sims, 0.0, 1.0)
    rows, cols = linear_sum_assignment(-score)

    ids: list[int | None] = [None] * k
    parents: list[list[int]] = [[] for _ in range(k)]
    matched_prev: set[int] = set()
    events = []
    for i, j in zip(rows, cols, strict=True):
        if jaccard[i, j] >= MIN_OVERLAP or sims[i, j] >= MIN_CENTROID_SIM:
            ids[i] = prev_ids[j]
            parents[i] = [prev_ids[j]]
            matched_prev.add(prev_ids[j])
            events.append({"event": "continued", "cluster_id": prev_ids[j]})

    for i in range(k):
        if ids[i] is not None:
            continue
        ids[i] = next_id
        next_id += 1
        j = int(np.argmax(counts[i])) if counts.shape[1] else 0
        if new_sizes[i] and counts[i, j] / new_sizes[i] >= MAJORITY:
            parents[i] = [prev_ids[j]]
            events.append({"event": "split", "cluster_id": ids[i], "from": prev_ids[j]})
        else:
            events.append({"event": "born", "cluster_id": ids[i]})

    for j, p in enumerate(prev_ids):
        if p in matched_prev:
            continue
        i = int(np.argmax(counts[:, j]))
        if prev_sizes[j] and counts[i, j] / prev_sizes[j] >= MAJORITY:
            target = ids[i]
            assert target is not None
            parents[i].append(p)
            events.append({"event": "merged", "cluster_id": p, "into": target})
        else:
            events.append({"event": "died", "cluster_id": p})

    return Lineage([int(x) for x in ids if x is not None], parents, events, next_id)
