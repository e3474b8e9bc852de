"""Emerging-cluster alerts after each run, stored and posted to a webhook without blocking the run.

Three rules, the first two for clusters and topics alike (``level`` in the alert): a cluster born
this run at or above ``alert_min_size``; a continued cluster whose
growth since the last run is ``alert_growth_factor`` times its average growth over earlier runs
(and at least ``alert_min_size`` tickets); a dense group among the run's outliers (HDBSCAN on the
outlier vectors finds a group of at least ``alert_min_size``).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from constellate.tickets import utc_now_precise

log = logging.getLogger(__name__)

ALERT_KIND = "alert"
OUTLIER_GROUP_SAMPLE = 5000
COHESION_MARGIN = 0.1
GROUP_IDS_KEPT = 500
OUTLIER_GROUP_DIMS = 20
MIN_COHESION = 0.55  # measured on Banking77 (MiniLM): intents 0.64-0.87, 300 random tickets 0.45


def detect_alerts(
    run: dict[str, Any],
    catalogue: Sequence[dict[str, Any]],
    history: Sequence[dict[str, Any]],
    outlier_vectors: np.ndarray,
    tickets_for: Callable[[Sequence[int]], list[dict[str, Any]]],
    min_size: int,
    growth_factor: float,
    previous_group: set[str] | frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Alerts for ``run`` given its catalogue, earlier successful runs (newest first) and its outliers.

    ``tickets_for`` gives the payloads of outlier rows (ids and texts of an outlier group); a group
    sharing half its tickets with ``previous_group`` (the last one alerted) is not news again.
    """
    alerts: list[dict[str, Any]] = []
    born = {e["cluster_id"] for e in run.get("events", []) if e["event"] == "born"}
    had_runs = bool(history)
    sizes_before = [{int(k): v for k, v in (h.get("sizes") or {}).items()} for h in history]
    for entry in catalogue:
        cid, size = int(entry["cluster_id"]), int(entry["size"])
        level = entry.get("level", "cluster")
        if cid in born and had_runs and size >= min_size:
            what = f"new {level} of {size} tickets"
            alerts.append(_alert(run, "born", cid, entry["name"], size, what, level=level))
            continue
        if not sizes_before or cid not in sizes_before[0]:
            continue
        growth = size - sizes_before[0][cid]
        earlier = [a[cid] - b[cid] for a, b in itertools.pairwise(sizes_before) if cid in a and cid in b]
        baseline = max(1.0, float(np.mean(earlier))) if earlier else None
        if baseline is not None and growth >= min_size and growth >= growth_factor * baseline:
            reason = f"grew by {growth} since the last run against an average of {baseline:.1f}"
            alerts.append(_alert(run, "growth", cid, entry["name"], size, reason, growth=growth, level=level))
    group = _outlier_group(outlier_vectors, min_size)
    if group is not None:
        members = tickets_for([int(i) for i in group[:GROUP_IDS_KEPT]])
        ids = [str(m.get("ticket_id")) for m in members]
        overlap = len(previous_group & set(ids)) / max(1, len(previous_group | set(ids)))
        if overlap < 0.5:
            reason = f"{len(group)} outlier tickets form a dense group"
            examples = [str(m.get("text", "")) for m in members[:5]]
            alerts.append(
                _alert(
                    run, "outlier_group", None, None, len(group), reason, examples=examples, ticket_ids=ids
                )
            )
    return alerts


def _outlier_group(vectors: np.ndarray, min_size: int) -> np.ndarray | None:
    """Rows of the largest dense group among outlier vectors, if one has ``min_size`` members."""
    if len(vectors) < 2 * min_size:
        return None
    from sklearn.cluster import HDBSCAN

    rows = np.arange(len(vectors))
    if len(rows) > OUTLIER_GROUP_SAMPLE:
        rows = np.sort(np.random.default_rng(0).choice(len(rows), OUTLIER_GROUP_SAMPLE, replace=False))
    picked = vectors[rows]
    from constellate.clustering import PCAReducer

    space = PCAReducer(OUTLIER_GROUP_DIMS).fit_transform(picked)  # HDBSCAN in 384-d took 8 s at 5,000
    labels = HDBSCAN(
        min_cluster_size=min_size, min_samples=min(5, min_size), allow_single_cluster=True, copy=True
    ).fit_predict(space)
    if (labels < 0).all():
        return None
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    best = ids[np.argmax(counts)]
    members = labels == best
    # a real group is much tighter than the outliers as a whole (one diffuse blob is not news)
    needed = max(MIN_COHESION, _cohesion(picked) + COHESION_MARGIN)
    if counts.max() < min_size or _cohesion(picked[members]) < needed:
        return None
    return rows[members]


def _cohesion(vectors: np.ndarray) -> float:
    """Mean cosine similarity of unit vectors to their normalised mean."""
    centre = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centre))
    return float((vectors @ (centre / norm)).mean()) if norm > 0 else 0.0


def _alert(
    run: dict[str, Any], rule: str, cid: int | None, name: str | None, size: int, reason: str, **extra: Any
) -> dict[str, Any]:
    return {
        "alert_id": f"{run['run_id']}:{rule}:{cid if cid is not None else 'outliers'}",
        "rule": rule,
        "run_id": run["run_id"],
        "cluster_id": cid,
        "cluster_name": name,
        "size": size,
        "reason": reason,
        "created_at": utc_now_precise(),
        **extra,
    }


class Notifier(Protocol):
    """Sends alerts somewhere; must return at once."""

    def notify(self, alerts: Sequence[dict[str, Any]]) -> None: ...


class WebhookNotifier:
    """POSTs ``{"alerts": [...]}`` as JSON from a daemon thread, retrying with exponential backoff.

    Only deliveries still in progress are kept (each thread drops itself when it ends), so a
    long-lived worker notifying after every run holds no finished threads.
    """

    def __init__(self, url: str, retries: int = 5, backoff: float = 0.5, timeout: float = 10.0) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.delivered = 0
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Deliveries not finished yet (delivered, or given up after the last retry)."""
        with self._lock:
            return len(self._threads)

    def notify(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Send in the background; the caller (a recluster run) never waits."""
        if not alerts:
            return
        body = json.dumps({"alerts": list(alerts)}, default=str).encode()
        thread = threading.Thread(target=self._deliver, args=(body,), name="alert-webhook", daemon=True)
        with self._lock:  # registered before it runs, so its own removal always finds it
            self._threads.add(thread)
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._threads.discard(thread)
            raise

    def wait(self, timeout: float) -> None:
        """Let pending deliveries finish (a CLI process about to exit)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            pending = list(self._threads)
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _deliver(self, body: bytes) -> None:
        try:
            self._send(body)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _send(self, body: bytes) -> None:
        delay = self.backoff
        for attempt in range(1, self.retries + 1):
            try:
                request = urllib.request.Request(
                    self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        with self._lock:  # deliveries run side by side
                            self.delivered += 1
                        return
            except Exception as exc:  # any failure is retried; the run has long finished
                log.warning("alert webhook attempt %d/%d failed: %s", attempt, self.retries, exc)
            time.sleep(delay)
            delay *= 2
        log.error("alert webhook gave up after %d attempts", self.retries)
