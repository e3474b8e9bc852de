"""Label fresh tickets at ingest against the live clusters (nearest centroid, the run's outlier scale)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from constellate.clustering import OutlierScale, nearest_centroid
from constellate.edits import edits_meta
from constellate.labels import SLOTS, slot_payload
from constellate.store.base import VectorStore


class CentroidAssigner:
    """A :class:`~constellate.ingest.Labeller`: nearest live centroid, outlier score on the run's scale.

    Labels go into both slots: the live one, so readers see the ticket labelled at once, and the
    other, so a run that is writing that slot right now and did not see this ticket still leaves it
    labelled when it switches (the next run relabels it). The catalogue is cached per run and
    reloaded when the current run changes or a human edits it.
    """

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._run: str | None = None
        self._version: tuple[str | None, str | None] | None = None
        self._centroids: np.ndarray | None = None
        self._ids: list[int] = []
        self._names: list[str] = []
        self._scale: OutlierScale | None = None

    def _refresh(self) -> None:
        state = self.store.get_state()
        run = state.get("current_run")
        version = (run, edits_meta(self.store).get("edited_at"))
        if version == self._version:
            return
        self._version = version
        records = self.store.list_clusters(run, with_vector=True) if run else []
        self._run = run
        self._ids = [int(r.payload["cluster_id"]) for r in records]
        self._names = [str(r.payload.get("name", "")) for r in records]
        self._centroids = np.stack([r.vector for r in records]) if records else None
        scale = state.get("outlier_scale")
        self._scale = OutlierScale.from_dict(scale) if scale else None

    def label(self, vectors: np.ndarray) -> list[dict[str, Any]]:
        """Payload fields for each vector; empty dicts before the first completed run."""
        with self._lock:
            self._refresh()
            if self._centroids is None or self._scale is None or len(vectors) == 0:
                return [{} for _ in range(len(vectors))]
            idx, sims = nearest_centroid(np.asarray(vectors, dtype=np.float32), self._centroids)
            scores = self._scale.score(1.0 - sims)
            flags = self._scale.is_outlier(scores)
            out = []
            for i, c in enumerate(idx):
                values = {
                    "cluster_id": self._ids[int(c)],
                    "cluster_name": self._names[int(c)],
                    "is_outlier": bool(flags[i]),
                    "outlier_score": round(float(scores[i]), 4),
                    "label_run": self._run,
                    "assigned_by": "ingest",
                }
                payload: dict[str, Any] = {}
                for slot in SLOTS:
                    payload.update(slot_payload(slot, values))
                out.append(payload)
            return out
