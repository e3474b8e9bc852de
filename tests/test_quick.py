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
