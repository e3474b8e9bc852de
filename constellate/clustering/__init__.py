"""Clustering stages (reduce, cluster, outliers) and the resolver that picks them from settings and N."""

from __future__ import annotations

from typing import TYPE_CHECKING

from constellate.clustering.cluster import (
    Clusterer,
    DBSCANClusterer,
    EVoCClusterer,
    HDBSCANClusterer,
    KMeansClusterer,
    default_min_cluster_size,
)
from constellate.clustering.model import ClusterModel, ClusterResult, Fit, cluster_all
from constellate.clustering.outliers import OutlierScale, nearest_centroid
from constellate.clustering.reduce import NoReduction, PCAReducer, Reducer, UMAPReducer

if TYPE_CHECKING:
    from constellate.config import Settings

__all__ = [
    "ClusterModel",
    "ClusterResult",
    "Clusterer",
    "DBSCANClusterer",
    "EVoCClusterer",
    "Fit",
    "HDBSCANClusterer",
    "KMeansClusterer",
    "NoReduction",
    "OutlierScale",
    "PCAReducer",
    "Reducer",
    "UMAPReducer",
    "build_cluster_model",
    "cluster_all",
    "default_min_cluster_size",
    "nearest_centroid",
]


def build_cluster_model(settings: Settings, n: int) -> ClusterModel:
    """Pick the stages for a fit sample of ``n`` tickets.

    Default (``algorithm=evoc``, ``reduction=auto``): HDBSCAN with ``min_cluster_size`` = √n/2 on
    EVoC's node embedding of the raw vectors (docs/backends.md). ``algorithm=hdbscan``: the same
    HDBSCAN on UMAP-10. Below ``umap_min_points`` both use PCA-50 + HDBSCAN (no numba kernels for a
    small sample). KMeans and MiniBatchKMeans with a given k, and DBSCAN, cluster the raw vectors
    unless told otherwise.
    """
    fit_size = min(n, settings.fit_sample_size)
    algorithm = settings.algorithm
    if algorithm == "evoc" and settings.reduction == "auto" and fit_size < settings.umap_min_points:
        algorithm = "hdbscan"  # a small sample: PCA-50 + HDBSCAN, as below
    clusterer: Clusterer
    if algorithm == "hdbscan":
        clusterer = HDBSCANClusterer(settings.min_cluster_size)
    elif algorithm == "evoc":
        clusterer = EVoCClusterer(settings.min_cluster_size, seed=settings.seed)
    elif settings.algorithm in ("kmeans", "minibatch_kmeans"):
        clusterer = KMeansClusterer(
            settings.n_clusters, seed=settings.seed, minibatch=settings.algorithm == "minibatch_kmeans"
        )
    else:
        clusterer = DBSCANClusterer(settings.dbscan_eps)

    reduction = settings.reduction
    if reduction == "auto":
        density_driven = algorithm == "hdbscan" or (
            settings.algorithm in ("kmeans", "minibatch_kmeans") and settings.n_clusters is None
        )
        if not density_driven:
            reduction = "none"
        else:
            reduction = "umap" if fit_size >= settings.umap_min_points else "pca"
    reducer: Reducer
    if reduction == "umap":
        reducer = UMAPReducer(seed=settings.seed)
    elif reduction == "pca":
        reducer = PCAReducer(seed=settings.seed)
    else:
        reducer = NoReduction()
    return ClusterModel(reducer, clusterer)
