"""constellate.cluster_texts: the in-memory entry for notebooks."""

from __future__ import annotations

from sklearn.metrics import adjusted_rand_score

from constellate import cluster_texts
from constellate.config import Settings
from tests.topics import topic_data


def test_cluster_texts_labels_names_and_scores_every_text(hash_embedder) -> None:
    tickets, vectors, gold = topic_data(4, 50)
    texts = [t.text for t in tickets]
    result = cluster_texts(
        texts, settings=Settings(min_cluster_size=20), embedder=hash_embedder, vectors=vectors
    )
    assert len(result.cluster_ids) == len(result.cluster_names) == len(result.outlier_scores) == 200
    assert adjusted_rand_score(gold, result.cluster_ids) == 1.0
    assert len(result.clusters) == 4 and len({c["name"] for c in result.clusters}) == 4
    assert all(0.0 <= s <= 1.0 for s in result.outlier_scores)
    assert 0 < sum(result.is_outlier) <= 0.12 * 200
    first = result.clusters[result.cluster_ids[0]]
    assert result.cluster_names[0] == first["name"] and "refund" in " ".join(first["keywords"])


def test_cluster_texts_returns_the_topic_level_too(hash_embedder) -> None:
    from tests.topics import nested_data

    tickets, vectors, gold, gold_topic = nested_data()
    result = cluster_texts(
        [t.text for t in tickets],
        settings=Settings(min_cluster_size=15),
        embedder=hash_embedder,
        vectors=vectors,
    )
    assert adjusted_rand_score(gold, result.cluster_ids) == 1.0
    assert adjusted_rand_score(gold_topic, result.topic_ids) == 1.0
    assert len(result.topics) == 3 and sorted(c for t in result.topics for c in t["clusters"]) == list(
        range(9)
    )
    names = {t["name"] for t in result.topics} | {c["name"] for c in result.clusters}
    assert len(names) == 12  # distinct across both levels
    assert result.topic_names[0] == result.topics[result.topic_ids[0]]["name"]
