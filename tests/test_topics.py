"""Grouping clusters into topics (constellate.topics) on constructed nested blobs."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from constellate.embedding import normalize
from constellate.topics import group_clusters, topic_centroids, topic_count


def nested_centroids(topics: int = 4, per_topic: int = 3, dim: int = 32, seed: int = 0):
    """Cluster centroids around topic centres (close within a topic, far across)."""
    rng = np.random.default_rng(seed)
    centres = normalize(rng.normal(size=(topics, dim)))
    gold = np.repeat(np.arange(topics), per_topic)
    centroids = normalize(centres[gold] + rng.normal(scale=0.15, size=(len(gold), dim)))
    return centroids, gold


def test_topic_count_grows_like_the_square_root_within_bounds() -> None:
    assert topic_count(1) == 1 and topic_count(2) == 1
    assert topic_count(4) == 2
    assert topic_count(80) == 9 and topic_count(150) == 12
    assert topic_count(10_000) == 25


def test_nested_blobs_give_back_their_topics() -> None:
    centroids, gold = nested_centroids()
    sizes = np.full(len(gold), 50)
    topics = group_clusters(centroids, sizes, n_topics=4)
    assert adjusted_rand_score(gold, topics) == 1.0
    assert sorted(np.bincount(topics)) == [3, 3, 3, 3]


def test_topics_are_ordered_by_size_and_a_big_cluster_is_not_swallowed() -> None:
    centroids, gold = nested_centroids(topics=3, per_topic=3)
    sizes = np.array([500, 10, 10, 20, 20, 20, 5, 5, 5])
    topics = group_clusters(centroids, sizes, n_topics=3)
    totals = [sizes[topics == t].sum() for t in range(3)]
    assert totals == sorted(totals, reverse=True)  # topic 0 is the biggest
    assert adjusted_rand_score(gold, topics) == 1.0


def test_topic_centroids_are_size_weighted_unit_means() -> None:
    centroids = normalize(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32))
    out = topic_centroids(centroids, np.array([3, 1, 1]), np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert out[0][0] > out[0][1]  # pulled towards the bigger cluster
    np.testing.assert_allclose(out[1], centroids[2], atol=1e-6)
