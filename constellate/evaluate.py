"""Score the pipeline against gold labels (never shown to it), plus internal metrics."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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


def evaluate(
    items: Sequence[LabelledText], settings: Settings, embedder: Embedder, namer: Namer | None = None
) -> dict[str, Any]:
    """Ingest ``items`` into a fresh temporary embedded store, recluster, and score the stored labels.

    The same ingest and recluster code as the service runs; gold labels stay here. ``seconds`` is
    the recluster run; ``embed_seconds`` the ingest (embedding + upsert) before it.
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
        finally:
            store.close()
    pred = np.array([predicted[t.id] for t in tickets])
    gold = [item.label for item in items]
    return {
        "n": len(items),
        "gold_labels": len(set(gold)),
        "clusters": run["n_clusters"],
        "outlier_fraction": run["outlier_fraction"],
        "noise_fraction": run["noise_fraction"],
        **external_metrics(gold, pred),
        "silhouette": run.get("silhouette"),
        "davies_bouldin": run.get("davies_bouldin"),
        "seconds": round(run["seconds"]["total"], 2),
        "embed_seconds": round(embed_seconds, 2),
        "params": run["params"],
    }
