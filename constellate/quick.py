"""Cluster a list of texts in memory, no store or server: for notebooks and scripts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from constellate.candidates import make_name
from constellate.clustering import OutlierScale, build_cluster_model, cluster_all
from constellate.config import Settings
from constellate.embedding import Embedder
from constellate.naming import Namer, namer_for
from constellate.topics import group_clusters, topic_centroids

NAMING_DOCS = 200


@dataclass
class Clustered:
    """Per-text results (same order as the input) and the cluster catalogue."""

    cluster_ids: list[int]
    cluster_names: list[str]
    outlier_scores: list[float]
    is_outlier: list[bool]
    clusters: list[dict[str, Any]] = field(default_factory=list)
    topic_ids: list[int] = field(default_factory=list)
    topic_names: list[str] = field(default_factory=list)
    topics: list[dict[str, Any]] = field(default_factory=list)  # each with its clusters' ids


def cluster_texts(
    texts: Sequence[str],
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    namer: Namer | None = None,
    vectors: np.ndarray | None = None,
) -> Clustered:
    """Embed (unless ``vectors`` are given), cluster, name and score ``texts`` with the service's stages.

    >>> from constellate import cluster_texts
    >>> result = cluster_texts(["my card was declined", ...])
    >>> result.cluster_names[0], result.clusters[0]["keywords"]
    """
    settings = settings or Settings()
    if embedder is None:
        from constellate.embedding import embedder_for

        embedder = embedder_for(settings)
    if vectors is None:
        vectors = embedder.embed(list(texts))
    sample = min(len(texts), settings.fit_sample_size)
    result = cluster_all(build_cluster_model(settings, sample), vectors, sample, settings.seed)
    distance = 1.0 - result.similarity
    scale = OutlierScale.fit(distance, settings.outlier_share)
    scores = scale.score(distance)
    flags = scale.is_outlier(scores)

    rng = np.random.default_rng(settings.seed)
    members = [np.flatnonzero(result.labels == c) for c in range(result.n_clusters)]
    namer = namer or namer_for(embedder, settings)
    taken: set[str] = set()
    keywords, names = _named(members, result.centroids, texts, vectors, namer, rng, taken, settings)
    sizes = np.array([len(m) for m in members])
    topic_of = group_clusters(result.centroids, sizes)
    n_topics = int(topic_of.max()) + 1 if len(topic_of) else 0
    topic_members = [np.flatnonzero(topic_of[result.labels] == t) for t in range(n_topics)]
    centres = topic_centroids(result.centroids, sizes, topic_of, n_topics)
    # topic names distinct from the clusters' names too (``taken`` holds them)
    topic_keywords, topic_names = _named(topic_members, centres, texts, vectors, namer, rng, taken, settings)
    clusters = [
        {
            "cluster_id": c,
            "name": names[c],
            "keywords": keywords[c],
            "size": len(members[c]),
            "topic_id": int(topic_of[c]),
            "exemplars": [texts[i] for i in members[c][np.argsort(-result.similarity[members[c]])[:3]]],
        }
        for c in range(result.n_clusters)
    ]
    topics = [
        {
            "topic_id": t,
            "name": topic_names[t],
            "keywords": topic_keywords[t],
            "size": len(topic_members[t]),
            "clusters": [c for c in range(result.n_clusters) if topic_of[c] == t],
        }
        for t in range(n_topics)
    ]
    return Clustered(
        cluster_ids=[int(x) for x in result.labels],
        cluster_names=[names[int(x)] for x in result.labels],
        outlier_scores=[round(float(s), 4) for s in scores],
        is_outlier=[bool(f) for f in flags],
        clusters=clusters,
        topic_ids=[int(topic_of[x]) for x in result.labels],
        topic_names=[topic_names[int(topic_of[x])] for x in result.labels],
        topics=topics,
    )


def _named(
    members: list[np.ndarray],
    centres: np.ndarray,
    texts: Sequence[str],
    vectors: np.ndarray,
    namer: Namer,
    rng: np.random.Generator,
    taken: set[str],
    settings: Settings,
) -> tuple[list[list[str]], list[str]]:
    """Keywords and a name per group of ``members`` (rows), read from at most ``NAMING_DOCS`` of
    each group's texts; names already in ``taken`` are not given again (it is updated)."""
    picked = [m if len(m) <= NAMING_DOCS else rng.choice(m, NAMING_DOCS, replace=False) for m in members]
    docs = [[texts[i] for i in m] for m in picked]
    keywords = namer.keywords(docs, centres, [vectors[m] for m in picked])
    phrases = namer.phrases(docs, centres, [vectors[m] for m in picked])
    names = [
        make_name(kws[: settings.name_keywords], taken, said)
        for kws, said in zip(keywords, phrases, strict=True)
    ]
    return keywords, names
