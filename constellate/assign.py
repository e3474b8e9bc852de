"""Label fresh tickets against the live clusters (nearest centroid, the run's outlier scale)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from constellate.clustering import OutlierScale, nearest_centroid
from constellate.edits import edits_meta
from constellate.labels import INGEST, both_slots
from constellate.store.base import VectorStore


class CentroidAssigner:
    """A :class:`~constellate.ingest.Labeller`: nearest live centroid, outlier score on the run's scale.

    Labels go into both slots: the live one, so readers see the ticket labelled at once, and the
    other, so a run writing that slot right now still leaves the ticket labelled when it switches.
    Each label names the run it was computed against (``label_run``): after a switch, the run
    relabels tickets whose ingest label names an older run, and :meth:`is_current` lets the ingest
    path relabel a batch it labelled just before a switch and stored just after it. The catalogue
    is cached per run and reloaded when the current run changes or a human edits it.
    """

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._run: str | None = None
        self._version: tuple[str | None, str | None] | None = None
        self._centroids: np.ndarray | None = None
        self._ids: list[int] = []
        self._scale: OutlierScale | None = None

    def _refresh(self) -> None:
        state = self.store.get_state()
        run = state.get("current_run")
        version = (run, edits_meta(self.store).get("edited_at"))
        if version == self._version:
            return
        records = self.store.list_clusters(run, with_vector=True) if run else []
        scale = state.get("outlier_scale")
        self._version = version
        self._run = run
        self._ids = [int(r.payload["cluster_id"]) for r in records]
        self._centroids = np.stack([r.vector for r in records]) if records else None
        self._scale = OutlierScale.from_dict(scale) if scale else None

    def label(
        self, vectors: np.ndarray, cleared: np.ndarray | None = None
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """The run labelled against and payload fields per vector (empty before the first run).

        ``cleared`` marks tickets a human said are not outliers: never flagged.
        """
        with self._lock:
            self._refresh()
            if self._centroids is None or self._scale is None or len(vectors) == 0:
                return self._run, [{} for _ in range(len(vectors))]
            idx, sims = nearest_centroid(np.asarray(vectors, dtype=np.float32), self._centroids)
            scores = self._scale.score(1.0 - sims)
            flags = self._scale.is_outlier(scores)
            if cleared is not None:
                flags &= ~np.asarray(cleared, dtype=bool)
            out = [
                both_slots(
                    {
                        "cluster_id": self._ids[int(c)],
                        "is_outlier": bool(flags[i]),
                        "outlier_score": round(float(scores[i]), 4),
                        "label_run": self._run,
                        "assigned_by": INGEST,
                    }
                )
                for i, c in enumerate(idx)
            ]
            return self._run, out

    def is_current(self, run: str | None) -> bool:
        """Whether ``run`` is still the live run (a point read of the state)."""
        return self.store.get_state().get("current_run") == run
