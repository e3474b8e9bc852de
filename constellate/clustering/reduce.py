"""Reduction stages: vectors (n, d) -> a lower-dimensional space the clusterer works in."""

from __future__ import annotations

import warnings
from typing import Protocol

import numpy as np


class Reducer(Protocol):
    """``fit_transform`` learns the projection on the fit sample."""

    name: str

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray: ...


class NoReduction:
    """Cluster in the original space."""

    name = "none"

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray:
        return vectors


class PCAReducer:
    """PCA to ``n_components`` (fast at any N: ≤ 1.3 s at 500k measured)."""

    name = "pca"

    def __init__(self, n_components: int = 50, seed: int = 42) -> None:
        self.n_components = n_components
        self.seed = seed

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        k = max(1, min(self.n_components, vectors.shape[0] - 1, vectors.shape[1]))
        return PCA(k, random_state=self.seed).fit_transform(vectors).astype(np.float32)


SMALL_DATA = 4096  # umap's exact (all pairs) path below this many points


class UMAPReducer:
    """UMAP with cosine metric; ``min_dist=0`` by default packs clusters tightly for density clustering
    (a map for people wants some spread)."""

    name = "umap"

    def __init__(
        self,
        n_components: int = 10,
        n_neighbors: int = 15,
        seed: int = 42,
        min_dist: float = 0.0,
        n_epochs: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.seed = seed
        self.min_dist = min_dist
        self.n_epochs = n_epochs  # None: umap's own (500 below 10,000 points, 200 above)

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray:
        import umap

        from constellate.warmup import enable_kernel_cache

        enable_kernel_cache()  # compiled once per machine, not per process
        n = vectors.shape[0]
        reducer = umap.UMAP(
            n_components=min(self.n_components, max(2, n - 2)),
            n_neighbors=max(2, min(self.n_neighbors, n - 1)),
            min_dist=self.min_dist,
            metric="cosine" if n >= SMALL_DATA else "precomputed",
            random_state=self.seed,
            n_epochs=self.n_epochs,
            n_jobs=1,  # a fixed seed forces one thread anyway; saying so silences umap's warning
        )
        if n >= SMALL_DATA:
            return np.asarray(reducer.fit_transform(vectors), dtype=np.float32)
        # Below 4,096 points umap computes every distance through sklearn with its numba metric as a
        # Python callable: 87 s for 2,000 points here. The same cosine distances from one matrix
        # product: the same graph, in milliseconds.
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        distances = np.clip(1.0 - unit @ unit.T, 0.0, 2.0).astype(np.float32)
        np.fill_diagonal(distances, 0.0)
        with warnings.catch_warnings():  # "precomputed: inverse_transform unavailable": not used
            warnings.filterwarnings("ignore", message="using precomputed metric")
            return np.asarray(reducer.fit_transform(distances), dtype=np.float32)
