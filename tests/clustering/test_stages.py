"""Clustering stages on make_blobs-style data; outlier scale; the resolver."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from constellate.clustering import (
    ClusterModel,
    DBSCANClusterer,
    EVoCClusterer,
    HDBSCANClusterer,
    KMeansClusterer,
    NoReduction,
    OutlierScale,
    PCAReducer,
    build_cluster_model,
    cluster_all,
    default_min_cluster_size,
    nearest_centroid,
)
from constellate.clustering.model import assign_noise
from constellate.config import Settings
from constellate.embedding import normalize


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_blobs(
        n_samples=1200, centers=6, n_features=16, cluster_std=0.6, center_box=(-8, 8), random_state=3
    )
    return normalize(x), y


@pytest.mark.parametrize(
    "clusterer",
    [
        HDBSCANClusterer(),
        KMeansClusterer(6),
        KMeansClusterer(None),
        KMeansClusterer(6, minibatch=True),
        DBSCANClusterer(),
    ],
    ids=["hdbscan", "kmeans-k", "kmeans-auto", "minibatch", "dbscan"],
)
def test_each_clusterer_recovers_blobs(clusterer, blobs) -> None:
    x, y = blobs
    result = ClusterModel(NoReduction(), clusterer).fit(x)
    assert result.labels.shape == (len(x),) and result.labels.min() >= 0  # a full labelling
    assert adjusted_rand_score(y, result.labels) > 0.9
    assert result.centroids.shape == (result.n_clusters, 16)
    np.testing.assert_allclose(np.linalg.norm(result.centroids, axis=1), 1.0, atol=1e-5)


def test_evoc_recovers_blobs_deterministically(blobs) -> None:
    x, y = blobs
    clusterer = EVoCClusterer()
    result = ClusterModel(NoReduction(), clusterer).fit(x)
    assert result.n_clusters == 6
    assert result.labels.min() >= 0 and adjusted_rand_score(y, result.labels) >= 0.9
    assert clusterer.params()["min_cluster_size"] == default_min_cluster_size(len(x))
    # a seed (NN-descent on a fixed thread count, the rest on one): the same labels again, and
    # numba's thread count is restored
    threads = numba.get_num_threads()
    np.testing.assert_array_equal(EVoCClusterer().fit_predict(x), EVoCClusterer().fit_predict(x))
    assert numba.get_num_threads() == threads


def test_evoc_handles_tiny_samples() -> None:
    x, _ = make_blobs(n_samples=12, centers=2, n_features=8, random_state=0)
    labels = EVoCClusterer().fit_predict(normalize(x))
    assert labels.shape == (12,)


def test_kmeans_auto_k_takes_the_density_cluster_count(blobs) -> None:
    x, _ = blobs
    clusterer = KMeansClusterer(None)
    clusterer.fit_predict(x)
    assert clusterer.params() == {"n_clusters": 6, "auto_k": True}


def test_labels_are_ordered_by_size_and_noise_is_reassigned() -> None:
    x, _ = make_blobs(n_samples=[400, 200, 100], n_features=8, cluster_std=0.4, random_state=1)
    x = normalize(np.vstack([x, np.random.default_rng(0).uniform(-10, 10, size=(30, 8))]))
    result = ClusterModel(NoReduction(), HDBSCANClusterer(min_cluster_size=30)).fit(x)
    sizes = np.bincount(result.labels)
    assert list(sizes) == sorted(sizes, reverse=True)
    assert result.noise.any()
    # a noise point carries its nearest centroid
    i = int(np.flatnonzero(result.noise)[0])
    assert result.labels[i] == int(np.argmax(result.centroids @ x[i]))


def test_noise_is_assigned_by_seeded_kmeans() -> None:
    """Members keep their labels; every noise row ends with its nearest centroid, each centroid the
    unit mean of its members and the noise it took (the fixed point). Here one pass is not it: a
    large noise group at 60 degrees joins B (members at 90) and pulls B's centroid towards the small
    group at 44 degrees, which a single pass gave to A (members at 0)."""

    def at(degrees: float, n: int) -> np.ndarray:
        angle = np.radians(degrees) + np.linspace(-0.01, 0.01, n)
        return np.stack([np.cos(angle), np.sin(angle), np.zeros(n)], axis=1).astype(np.float32)

    x = np.vstack([at(0, 10), at(90, 10), at(44, 5), at(60, 100)])
    labels = np.array([0] * 10 + [1] * 10 + [-1] * 105)
    noise = labels < 0
    out, centroids = assign_noise(x, labels, noise, 2)
    assert (out[~noise] == labels[~noise]).all()
    assert (out[20:] == 1).all()  # the 44-degree group moved to B once B took the 60-degree group
    nearest, _ = nearest_centroid(x[noise], centroids)
    assert (nearest == out[noise]).all()
    means = normalize(np.stack([x[out == c].mean(axis=0) for c in range(2)]))
    np.testing.assert_allclose(centroids, means, atol=1e-5)
    once, _ = assign_noise(x, labels, noise, 2, rounds=1)
    assert (once[20:25] == 0).all()  # one pass left it with A


def test_fit_on_a_sample_labels_everything(blobs) -> None:
    x, y = blobs
    result = cluster_all(ClusterModel(PCAReducer(8), HDBSCANClusterer()), x, sample_size=300)
    assert result.params["fit_size"] == 300
    assert len(result.labels) == len(x)
    assert adjusted_rand_score(y, result.labels) > 0.9


def test_min_cluster_size_grows_with_n() -> None:
    assert default_min_cluster_size(100) == 5
    assert default_min_cluster_size(1_000) == 16
    assert default_min_cluster_size(20_000) == 71
    assert default_min_cluster_size(1_000_000) == 500


def test_resolver_picks_stages_by_size_and_setting() -> None:
    small = build_cluster_model(Settings(), 300)
    big = build_cluster_model(Settings(), 50_000)
    assert (small.reducer.name, small.clusterer.name) == ("pca", "hdbscan")
    assert (big.reducer.name, big.clusterer.name) == ("none", "evoc")
    umap = build_cluster_model(Settings(algorithm="hdbscan"), 50_000)
    assert (umap.reducer.name, umap.clusterer.name) == ("umap", "hdbscan")
    small_umap = build_cluster_model(Settings(algorithm="hdbscan"), 300)
    assert (small_umap.reducer.name, small_umap.clusterer.name) == ("pca", "hdbscan")
    assert build_cluster_model(Settings(algorithm="kmeans", n_clusters=5), 1000).reducer.name == "none"
    assert build_cluster_model(Settings(algorithm="dbscan"), 1000).clusterer.name == "dbscan"
    evoc = build_cluster_model(Settings(algorithm="evoc"), 50_000)
    assert (evoc.reducer.name, evoc.clusterer.name) == ("none", "evoc")
    assert (
        build_cluster_model(Settings(algorithm="minibatch_kmeans"), 1000).clusterer.name == "minibatch_kmeans"
    )


def test_outlier_scale_scores_new_points_on_the_runs_scale() -> None:
    distances = np.linspace(0.0, 1.0, 1001)
    scale = OutlierScale.fit(distances, share=0.05)
    scores = scale.score(distances)
    assert scores.min() == 0.0 and scores.max() == 1.0
    assert abs(scale.is_outlier(scores).mean() - 0.05) < 0.002
    again = OutlierScale.from_dict(scale.to_dict())
    np.testing.assert_allclose(again.score(np.array([0.5, 2.0, -1.0])), [0.5, 1.0, 0.0], atol=1e-6)


def test_nearest_centroid_in_chunks() -> None:
    rng = np.random.default_rng(0)
    c = normalize(rng.normal(size=(5, 8)))
    v = normalize(rng.normal(size=(100, 8)))
    labels, sims = nearest_centroid(v, c, chunk=7)
    np.testing.assert_array_equal(labels, np.argmax(v @ c.T, axis=1))
    np.testing.assert_allclose(sims, np.max(v @ c.T, axis=1), atol=1e-6)


@pytest.mark.slow
def test_umap_reduction_separates_blobs(blobs) -> None:
    from constellate.clustering import UMAPReducer

    x, y = blobs
    result = ClusterModel(UMAPReducer(n_components=5), HDBSCANClusterer()).fit(x)
    assert adjusted_rand_score(y, result.labels) > 0.9
