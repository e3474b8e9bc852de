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
        mcs = self._used = resolved_min_size(self.min_cluster_size, n)
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


def resolved_min_size(min_cluster_size: int | None, n: int) -> int:
    """The ``min_cluster_size`` used for ``n`` points: as given, else √n/2, within 2..n."""
    return max(2, min(min_cluster_size or default_min_cluster_size(n), n))


# numba threads of EVoC's NN-descent: its graph depends on their number, not on the load. With 2
# instead of 1 the fit took 1.42 s instead of 2.02 s on Banking77 at the same quality (V 0.8010 vs
# 0.8012 over 8 input orders), and 150 epochs instead of 100 cost 0.12 s more for V 0.8022, ARI
# 0.544 vs 0.538 (docs/backends.md)
KNN_THREADS = 2
# numba threads of HDBSCAN's spanning tree, in fast_hdbscan's reproducible mode: its result depends
# on the number of threads, not on their timing (the default mode's did: equal-weight edges came in
# another order, 278 Banking77 tickets moved). On Banking77 and HWU64 two threads gave the labels of
# one, four runs each, in 0.35 s instead of 0.62 s (docs/backends.md).
HDBSCAN_THREADS = 2


def numba_threads(wanted: int) -> int:
    """``wanted`` numba threads, at most numba's (``NUMBA_NUM_THREADS``, the cores unless set: a
    one-core machine builds another kNN graph)."""
    import numba

    return max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))


def evoc_embedding(
    vectors: np.ndarray,
    n_neighbors: int = 15,
    n_components: int = 4,
    seed: int = 42,
    threads: int = 1,
    n_epochs: int = 150,
    knn_threads: int = KNN_THREADS,
) -> np.ndarray:
    """EVoC's node embedding of the cosine kNN graph: ``(n, n_components)`` points for density clustering.

    The first half of ``evoc.EVoC`` (kNN graph by NN-descent, fuzzy graph, label-propagation init,
    UMAP-like node embedding), without its cluster layers. The embedding runs on ``threads`` numba
    threads (thread-local, restored after): with one, the fast path is deterministic for a seed;
    ``EVoC(random_state=...)`` takes a slower "reproducible" path instead (measured 3x slower on 2
    busy cores, docs/backends.md). NN-descent sorts its graph updates, so its kNN graph is the same
    for a seed and a thread count however busy the cores: it runs on ``knn_threads``, a fixed
    number rather than the machine's, so that every machine with that many cores builds the same graph.
    """
    import numba
    from evoc.graph_construction import neighbor_graph_matrix
    from evoc.knn_graph import knn_graph
    from evoc.label_propagation import label_propagation_init
    from evoc.node_embedding import node_embedding

    data = np.ascontiguousarray(vectors, dtype=np.float32)
    n = data.shape[0]
    k = max(2, min(n_neighbors, n - 1))
    before = numba.get_num_threads()
    try:
        rng = np.random.RandomState(seed)
        numba.set_num_threads(numba_threads(knn_threads))
        indices, distances = knn_graph(data, n_neighbors=k, random_state=rng)
        numba.set_num_threads(numba_threads(threads))
        graph = neighbor_graph_matrix(float(k), indices, distances, True)
        init = label_propagation_init(
            graph,
            n_components=n_components,
            approx_n_parts=int(np.clip(int(8 * np.sqrt(n)), 256, 16384)),
            random_scale=0.1,
            scaling=0.5,
            noise_level=0.5,
            random_state=rng,
            data=data,
            n_label_prop_iter=20,
        )
        embedding = node_embedding(
            graph,
            n_components=n_components,
            n_epochs=n_epochs,
            initial_embedding=init,
            negative_sample_rate=1.0,
            noise_level=0.5,
            random_state=rng,
            reproducible_flag=False,
            initial_alpha=0.1,
        )
    finally:
        numba.set_num_threads(before)
    return np.asarray(embedding, dtype=np.float32)


class EVoCClusterer:
    """HDBSCAN on EVoC's node embedding of the cosine kNN graph, in place of UMAP-10.

    The embedding (:func:`evoc_embedding`, 4-d for 15 neighbours) takes the place of the UMAP
    reduction; HDBSCAN (fast_hdbscan, reproducible, ``HDBSCAN_THREADS``) keeps the pipeline's size-aware
    ``min_cluster_size`` = √n/2 rather than one of EVoC's own cluster layers, whose choice varied
    by dataset (docs/backends.md). Give it the raw unit vectors (``reduction`` resolves to none).
    """

    name = "evoc"

    def __init__(
        self,
        min_cluster_size: int | None = None,
        min_samples: int = 5,
        n_neighbors: int = 15,
        n_components: int = 4,
        n_epochs: int = 150,
        seed: int = 42,
        threads: int = 1,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.n_epochs = n_epochs
        self.seed = seed
        self.threads = threads
        self.embedding_: np.ndarray | None = None
        self._used: int | None = None

    def fit_predict(self, points: np.ndarray) -> np.ndarray:
        import fast_hdbscan
        import numba

        n = points.shape[0]
        mcs = self._used = resolved_min_size(self.min_cluster_size, n)
        if n <= self.n_neighbors + 1:  # too few for a kNN graph worth embedding: HDBSCAN on the vectors
            return HDBSCANClusterer(mcs, self.min_samples).fit_predict(points)
        embedding = evoc_embedding(
            points, self.n_neighbors, self.n_components, self.seed, self.threads, self.n_epochs
        )
        self.embedding_ = embedding  # kept for a coarser level (EVoC's cluster layers on the same points)
        before = numba.get_num_threads()
        numba.set_num_threads(numba_threads(HDBSCAN_THREADS))
        try:
            model = fast_hdbscan.HDBSCAN(
                min_cluster_size=mcs, min_samples=min(self.min_samples, mcs), reproducible=True
            )
            labels = model.fit_predict(embedding)
        finally:
            numba.set_num_threads(before)
        return np.asarray(labels, dtype=np.int64)

    def params(self) -> dict[str, object]:
        return {
            "min_cluster_size": self._used or self.min_cluster_size,
            "min_samples": self.min_samples,
            "n_neighbors": self.n_neighbors,
            "n_components": self.n_components,
            "n_epochs": self.n_epochs,
            "knn_threads": numba_threads(KNN_THREADS),  # the graph depends on it: a run record says which one
            "hdbscan_threads": numba_threads(HDBSCAN_THREADS),  # and the spanning tree
        }
