"""Clusterers: a (reduced) space -> labels, -1 for density noise."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np


class Clusterer(Protocol):
    """``fit_predict`` returns one int label per row; -1 marks density noise."""

    name: str

    def fit_predict(self, points: np.ndarray) -> np.ndarray: ...

    def params(self) -> dict[str, object]: ...


def default_min_cluster_size(n: int) -> int:
    """Size-aware HDBSCAN ``min_cluster_size``: half the square root of the fit size, at least 5.

    The smallest topic worth naming grows with the volume, but slower than linearly: 16 at 1k
    tickets, 57 at 13k, 71 at the 20k fit sample.
    """
    return max(5, round(math.sqrt(n) / 2))


class HDBSCANClusterer:
    """scikit-learn HDBSCAN; ``min_samples`` small so dense cores are not eroded into noise."""

    name = "hdbscan"

    def __init__(self, min_cluster_size: int | None = None, min_samples: int = 5) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self._used: int | None = None

    def fit_predict(self, points: np.ndarray) -> np.ndarray:
        from sklearn.cluster import HDBSCAN

        n = points.shape[0]
        mcs = self.min_cluster_size or default_min_cluster_size(n)
        mcs = max(2, min(mcs, n))
        self._used = mcs
        model = HDBSCAN(min_cluster_size=mcs, min_samples=min(self.min_samples, mcs), copy=True)
        return model.fit_predict(points).astype(np.int64)

    def params(self) -> dict[str, object]:
        return {"min_cluster_size": self._used or self.min_cluster_size, "min_samples": self.min_samples}


class KMeansClusterer:
    """KMeans; with ``n_clusters=None`` k is the number of density clusters HDBSCAN finds first.

    Silhouette rose steadily with k on ticket embeddings (DESIGN.md), so it cannot choose k; the
    count of HDBSCAN clusters in the same space is the criterion, checked on labelled data.
    """

    name = "kmeans"

    def __init__(self, n_clusters: int | None = None, seed: int = 42, minibatch: bool = False) -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.minibatch = minibatch
        self._k: int | None = None
        if minibatch:
            self.name = "minibatch_kmeans"

    def fit_predict(self, points: np.ndarray) -> np.ndarray:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        k = self.n_clusters
        if k is None:
            density = HDBSCANClusterer().fit_predict(points)
            k = max(2, len(set(density.tolist()) - {-1}))
        k = max(1, min(k, points.shape[0]))
        self._k = k
        if self.minibatch:
            model = MiniBatchKMeans(k, random_state=self.seed, n_init=3, batch_size=4096)
        else:
            model = KMeans(k, random_state=self.seed, n_init=1)
        return model.fit_predict(points).astype(np.int64)

    def params(self) -> dict[str, object]:
        return {"n_clusters": self._k, "auto_k": self.n_clusters is None}


class DBSCANClusterer:
    """DBSCAN with cosine distance; ``eps=None`` takes the median distance to the
    ``min_samples``-th neighbour on the fit sample."""

    name = "dbscan"

    def __init__(self, eps: float | None = None, min_samples: int = 5) -> None:
        self.eps = eps
        self.min_samples = min_samples
        self._eps: float | None = None

    def fit_predict(self, points: np.ndarray) -> np.ndarray:
        from sklearn.cluster import DBSCAN
        from sklearn.neighbors import NearestNeighbors

        eps = self.eps
        if eps is None:
            k = min(self.min_samples, points.shape[0] - 1)
            dist, _ = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(points).kneighbors(points)
            eps = float(np.median(dist[:, -1])) or 1e-6
        self._eps = eps
        return (
            DBSCAN(eps=eps, min_samples=self.min_samples, metric="cosine")
            .fit_predict(points)
            .astype(np.int64)
        )

    def params(self) -> dict[str, object]:
        return {"eps": self._eps, "min_samples": self.min_samples}
