"""Score the pipeline against gold labels (never shown to it), plus internal metrics."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from constellate.candidates import make_name
from constellate.config import Settings
from constellate.datasets import LabelledText
from constellate.embedding import Embedder
from constellate.ingest import ingest_tickets
from constellate.labels import slot_field
from constellate.naming import Namer
from constellate.pipeline import recluster
from constellate.tickets import Ticket


def external_metrics(gold: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
    """V-measure, ARI and NMI of a labelling against gold labels."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, v_measure_score

    return {
        "v_measure": round(float(v_measure_score(gold, predicted)), 4),
        "ari": round(float(adjusted_rand_score(gold, predicted)), 4),
        "nmi": round(float(normalized_mutual_info_score(gold, predicted)), 4),
    }


def name_similarity(
    catalogue: Sequence[Mapping[str, Any]],
    gold: Sequence[str],
    predicted: Sequence[int],
    embedder: Embedder,
) -> dict[str, float | None]:
    """How close cluster names come to the gold labels, in the encoder's space: the mean over
    clusters of the cosine between a cluster's name and its members' majority gold label written
    as words ("card_payment_fee_charged" -> "card payment fee charged"). The keyword names
    (:func:`make_name` of the same clusters' keywords, as before phrase names) are scored alongside."""
    majority: dict[int, Counter] = {}
    for label, cluster in zip(gold, predicted, strict=True):
        majority.setdefault(int(cluster), Counter())[label] += 1
    entries = [e for e in catalogue if int(e["cluster_id"]) in majority]
    if not entries:
        return {"name_label_similarity": None, "name_label_similarity_keywords": None}
    taken: set[str] = set()
    keyword_names = [make_name(list(e.get("keywords") or []), taken) for e in entries]
    labels = [
        majority[int(e["cluster_id"])].most_common(1)[0][0].replace("_", " ").strip().lower() for e in entries
    ]
    names = [str(e["name"]) for e in entries]
    vectors = embedder.embed([*names, *keyword_names, *labels])
    n = len(entries)
    said, listed, wanted = vectors[:n], vectors[n : 2 * n], vectors[2 * n :]
    return {
        "name_label_similarity": round(float(np.einsum("ij,ij->i", said, wanted).mean()), 4),
        "name_label_similarity_keywords": round(float(np.einsum("ij,ij->i", listed, wanted).mean()), 4),
    }


def topic_metrics(
    items: Sequence[LabelledText], predicted: np.ndarray, catalogue: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The topic level scored against the items' coarser gold level (``parent``), where they have
    one: a ticket's topic is its cluster's. ``topic_v_measure``/``topic_ari`` are None without one."""
    parents = [item.parent for item in items]
    if any(p is None for p in parents):
        return {"gold_parents": None, "topic_v_measure": None, "topic_ari": None}
    topic_of = {int(e["cluster_id"]): e.get("topic_id") for e in catalogue}
    topics = [topic_of.get(int(c)) for c in predicted]
    scores = external_metrics(parents, [-1 if t is None else int(t) for t in topics])
    return {
        "gold_parents": len(set(parents)),
        "topic_v_measure": scores["v_measure"],
        "topic_ari": scores["ari"],
    }


def evaluate(
    items: Sequence[LabelledText], settings: Settings, embedder: Embedder, namer: Namer | None = None
) -> dict[str, Any]:
    """Ingest ``items`` into a fresh temporary embedded store, recluster, and score the stored labels.

    The same ingest and recluster code as the service runs; gold labels stay here. ``seconds`` is
    the recluster run, ``name_seconds`` its name stage; ``embed_seconds`` the ingest (embedding +
    upsert) before it. ``topics`` counts the run's topics; with ``parent`` labels on the items the
    topic level is scored too (:func:`topic_metrics`). ``name_label_similarity`` scores the run's names against the gold labels,
    ``name_label_similarity_keywords`` keyword names of the same clusters (:func:`name_similarity`).
    """
    if not items:
        raise ValueError("nothing to evaluate")
    from constellate.store import edge_store

    with tempfile.TemporaryDirectory(prefix="constellate-eval-") as tmp:
        local = settings.model_copy(update={"data_dir": Path(tmp), "qdrant_url": None})
        store = edge_store(local)
        try:
            tickets = [Ticket(id=f"eval-{i}", text=item.text) for i, item in enumerate(items)]
            t0 = time.perf_counter()
            ingest_tickets(tickets, store, embedder, chunk_size=local.upsert_batch_size)
            embed_seconds = time.perf_counter() - t0
            run = recluster(store, local, namer=namer)
            if run["status"] != "succeeded":
                raise ValueError(f"the run did not succeed: {run.get('error') or run.get('reason')}")
            slot = store.get_state()["slot"]
            key = slot_field(slot, "cluster_id")
            predicted: dict[str, int] = {}
            offset = None
            while True:
                records, offset = store.scroll_tickets(limit=4096, offset=offset)
                for r in records:
                    predicted[str(r.payload["ticket_id"])] = int(r.payload[key])
                if offset is None:
                    break
            catalogue = [r.payload for r in store.list_clusters(run["run_id"])]
            n_topics = len(store.list_clusters(run["run_id"], level="topic"))
        finally:
            store.close()
    pred = np.array([predicted[t.id] for t in tickets])
    gold = [item.label for item in items]
    return {
        "n": len(items),
        "gold_labels": len(set(gold)),
        "clusters": run["n_clusters"],
        "topics": n_topics,
        **topic_metrics(items, pred, catalogue),
        "outlier_fraction": run["outlier_fraction"],
        "noise_fraction": run["noise_fraction"],
        **external_metrics(gold, pred),
        **name_similarity(catalogue, gold, pred.tolist(), embedder),
        "silhouette": run.get("silhouette"),
        "davies_bouldin": run.get("davies_bouldin"),
        "seconds": round(run["seconds"]["total"], 2),
        "name_seconds": round(run["seconds"].get("name", 0.0), 2),
        "embed_seconds": round(embed_seconds, 2),
        "params": run["params"],
    }
