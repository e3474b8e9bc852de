"""Topics: the level above clusters — clusters grouped by how close their centroids are.

A support lead reads 10-20 topics ("cards", "transfers", "account access") and opens each into its
clusters. Topics are groups of a run's clusters, so a ticket's topic is its cluster's topic: they
live in the catalogue only, and no ticket is written for them.
"""

from __future__ import annotations

import math

import numpy as np

from constellate.embedding import normalize

MIN_TOPICS, MAX_TOPICS = 2, 25


def topic_count(clusters: int) -> int:
    """How many topics for ``clusters`` clusters: about √k (9 for 80, 12 for 150), within 2..25."""
    if clusters <= MIN_TOPICS:
        return 1
    return max(MIN_TOPICS, min(MAX_TOPICS, round(math.sqrt(clusters))))


def group_clusters(centroids: np.ndarray, sizes: np.ndarray, n_topics: int | None = None) -> np.ndarray:
    """Topic index (0..T-1, largest topic first) of each cluster: size-weighted Ward linkage on the
    unit centroids, cut at ``n_topics`` groups (default :func:`topic_count`).

    Ward merges the two groups whose union adds least variance (``n_a n_b / (n_a + n_b)`` times the
    squared distance of their means), so a topic is a compact set of clusters and a big cluster is
    not swallowed by a chain of small ones.
    """
    k = len(centroids)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    wanted = topic_count(k) if n_topics is None else max(1, min(k, n_topics))
    weights = np.maximum(np.asarray(sizes, dtype=np.float64), 1.0)
    means = np.asarray(centroids, dtype=np.float64).copy()
    members: list[list[int]] = [[i] for i in range(k)]
    alive = np.ones(k, dtype=bool)
    while alive.sum() > wanted:
        idx = np.flatnonzero(alive)
        m, w = means[idx], weights[idx]
        sq = np.sum(m * m, axis=1)
        dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (m @ m.T), 0.0)
        cost = (w[:, None] * w[None, :] / (w[:, None] + w[None, :])) * dist
        np.fill_diagonal(cost, np.inf)
        a, b = np.unravel_index(int(np.argmin(cost)), cost.shape)
        i, j = int(idx[a]), int(idx[b])
        means[i] = (weights[i] * means[i] + weights[j] * means[j]) / (weights[i] + weights[j])
        weights[i] += weights[j]
        members[i].extend(members[j])
        alive[j] = False
    groups = [members[i] for i in np.flatnonzero(alive)]
    totals = [float(np.asarray(sizes)[g].sum()) for g in groups]
    out = np.empty(k, dtype=np.int64)
    for t, g in enumerate(sorted(range(len(groups)), key=lambda x: (-totals[x], min(groups[x])))):
        out[groups[g]] = t
    return out


def topic_centroids(centroids: np.ndarray, sizes: np.ndarray, topic_of: np.ndarray, n: int) -> np.ndarray:
    """Unit-norm size-weighted mean of each topic's cluster centroids."""
    dim = centroids.shape[1] if len(centroids) else 0
    sums = np.zeros((n, dim), dtype=np.float64)
    weights = np.maximum(np.asarray(sizes, dtype=np.float64), 1.0)
    np.add.at(sums, topic_of, centroids * weights[:, None])
    return normalize(sums.astype(np.float32)) if n else np.zeros((0, dim), np.float32)
