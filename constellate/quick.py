"""Cluster a list of texts in memory, no store or server: for notebooks and scripts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from constellate.clustering import OutlierScale, build_cluster_model, cluster_all
from constellate.config import Settings
from constellate.embedding import Embedder
from constellate.naming import KeyBERTNamer, Namer, make_name

NAMING_DOCS = 200


@dataclass
class Clustered:
    """Per-text results (same order as the input) and the cluster catalogue."""

    cluster_ids: list[int]
    cluster_names: list[str]
    outlier_scores: list[float]
    is_outlier: list[bool]
    clusters: list[dict[str, Any]] = field(default_factory=list)


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
    docs = [
        [texts[i] for i in (m if len(m) <= NAMING_DOCS else rng.choice(m, NAMING_DOCS, replace=False))]
        for m in members
    ]
    namer = namer or KeyBERTNamer(embedder, top_n=settings.name_keywords)
    keywords = namer.keywords(docs, result.centroids)
    phrases = namer.phrases(docs, result.centroids)
    taken: set[str] = set()
    names = [
        make_name(kws[: settings.name_keywords], taken, said)
        for kws, said in zip(keywords, phrases, strict=True)
    ]
    clusters = [
        {
            "cluster_id": c,
            "name": names[c],
            "keywords": keywords[c],
            "size": len(members[c]),
            "exemplars": [texts[i] for i in members[c][np.argsort(-result.similarity[members[c]])[:3]]],
        }
        for c in range(result.n_clusters)
    ]
    return Clustered(
        cluster_ids=[int(x) for x in result.labels],
        cluster_names=[names[int(x)] for x in result.labels],
        outlier_scores=[round(float(s), 4) for s in scores],
        is_outlier=[bool(f) for f in flags],
        clusters=clusters,
    )
