"""One recluster run: read -> cluster -> match ids -> name -> write labels -> write catalogue -> switch.

Labels are written into the slot readers are not using (see :mod:`constellate.labels`) and the
catalogue under the new run's id; the state's ``current_run``/``slot`` flip in one write at the end.
A run that raises half-way is recorded as failed and leaves the previous labels and catalogue live.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from constellate.alerts import ALERT_KIND, Notifier, detect_alerts
from constellate.clustering import ClusterResult, OutlierScale, build_cluster_model
from constellate.config import Settings
from constellate.edits import NOT_OUTLIER, apply_edits, edits_meta, enforce_ticket_edits, list_edits
from constellate.identity import Lineage, match_clusters
from constellate.labels import other_slot, slot_field, slot_payload
from constellate.mapping import map_layout
from constellate.naming import Namer, keyword_overlap, make_name
from constellate.store.base import Filter, IsEmpty, VectorStore
from constellate.tickets import utc_now_precise

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
NAMING_DOCS = 200  # member texts per cluster fed to c-TF-IDF
METRICS_SAMPLE = 5000


@dataclass
class Scan:
    """Every ticket's point id, vector, live cluster id (-1 when unlabelled) and outlier override."""

    ids: list[str]
    vectors: np.ndarray
    prev_labels: np.ndarray
    not_outlier: np.ndarray  # a human cleared the ticket's outlier flag


def new_run_id() -> str:
    """A sortable, unique run id."""
    return datetime.now(UTC).strftime("run-%Y%m%dT%H%M%S-") + secrets.token_hex(3)


def recluster(
    store: VectorStore,
    settings: Settings,
    namer: Namer | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    notifier: Notifier | None = None,
) -> dict[str, Any]:
    """Run one full recluster over every stored ticket and return the run record.

    Human edits are re-applied after identity matching; after the switch, alerts are detected,
    stored and handed to ``notifier`` (which must not block).
    """
    say = progress or (lambda _msg: None)
    run_id = run_id or new_run_id()
    state = store.get_state()
    live_slot: str | None = state.get("slot")
    target = other_slot(live_slot)
    started = time.perf_counter()
    run: dict[str, Any] = {
        "run_id": run_id,
        "started_at": utc_now_precise(),
        "status": "running",
        "slot": target,
    }
    _abandon_stale_runs(store)
    store.save_run(run)
    seconds: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        say("reading vectors")
        scan = read_all(store, live_slot, settings.upsert_batch_size * 4)
        seconds["read"] = time.perf_counter() - t0
        n = len(scan.ids)
        if n == 0:
            run.update(
                status="skipped", reason="no tickets stored", finished_at=utc_now_precise(), n_points=0
            )
            store.save_run(run)
            return run

        say(f"clustering {n} tickets")
        model = build_cluster_model(settings, n)
        result = model.fit(scan.vectors)
        seconds.update(result.seconds)

        t0 = time.perf_counter()
        previous = store.list_clusters(state.get("current_run"), with_vector=True)
        prev_centroids = {int(r.payload["cluster_id"]): r.vector for r in previous if r.vector is not None}
        edits = list_edits(store)
        lineage = match_clusters(
            result.labels,
            result.centroids,
            scan.prev_labels,
            prev_centroids,
            max(int(state.get("next_cluster_id", 0)), int(edits_meta(store).get("next_cluster_id", 0))),
        )
        result, lineage = apply_edits(edits, scan.ids, scan.vectors, result, lineage)
        seconds["match"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        scale = OutlierScale.fit(1.0 - result.similarity, settings.outlier_share)
        scores = scale.score(1.0 - result.similarity)
        outlier = scale.is_outlier(scores) & ~scan.not_outlier
        seconds["outliers"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        map_rows, coords = map_layout(scan.vectors, settings.map_points, settings.seed)
        map_xy = np.full((n, 2), np.nan, dtype=np.float32)
        map_xy[map_rows] = coords
        seconds["map"] = time.perf_counter() - t0

        say(f"naming {result.n_clusters} clusters")
        t0 = time.perf_counter()
        catalogue = build_catalogue(store, scan, result, lineage, previous, namer, settings, run_id)
        seconds["name"] = time.perf_counter() - t0

        say("writing labels")
        t0 = time.perf_counter()
        stable = np.asarray(lineage.ids, dtype=np.int64)[result.labels]
        names = {int(c["cluster_id"]): c["name"] for c in catalogue}
        updates = [
            (
                pid,
                slot_payload(
                    target,
                    {
                        "cluster_id": int(stable[i]),
                        "cluster_name": names[int(stable[i])],
                        "is_outlier": bool(outlier[i]),
                        "outlier_score": round(float(scores[i]), 4),
                        "label_run": run_id,
                        "assigned_by": "recluster",
                        "map_x": None if np.isnan(map_xy[i, 0]) else round(float(map_xy[i, 0]), 4),
                        "map_y": None if np.isnan(map_xy[i, 1]) else round(float(map_xy[i, 1]), 4),
                    },
                ),
            )
            for i, pid in enumerate(scan.ids)
        ]
        store.set_payloads(updates)
        store.upsert_clusters(run_id, catalogue, result.centroids)
        seconds["write"] = time.perf_counter() - t0

        metrics = internal_metrics(scan.vectors, result.labels, settings.seed)
        run.update(
            status="succeeded",
            finished_at=utc_now_precise(),
            algorithm=result.params.get("algorithm"),
            params=result.params,
            n_points=n,
            n_clusters=result.n_clusters,
            noise_fraction=round(float(result.noise.mean()), 4),
            outlier_fraction=round(float(outlier.mean()), 4),
            events=lineage.events,
            sizes={str(c["cluster_id"]): int(c["size"]) for c in catalogue},
            **metrics,
        )
        # The switch: one write makes the new labels and catalogue live. Ids a human split took
        # during the run are skipped, so none is handed out twice.
        split_taken = int(edits_meta(store).get("next_cluster_id", 0))
        store.set_state(
            {
                **state,
                "current_run": run_id,
                "slot": target,
                "next_cluster_id": max(lineage.next_id, split_taken),
                "outlier_scale": scale.to_dict(),
                "tickets_at_run": n,
                "switched_at": utc_now_precise(),
            }
        )
        t0 = time.perf_counter()
        run["caught_up"] = label_stragglers(store, target)
        enforce_ticket_edits(store, target)
        store.prune_clusters(keep_run_id=run_id)
        store.optimize()
        seconds["optimize"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:  # the run has switched: a failing alert check must not mark it failed
            alerts = _alerts(store, run, catalogue, scan, outlier, settings)
        except Exception as exc:
            log.exception("alert detection failed")
            alerts, run["alerts_error"] = [], f"{type(exc).__name__}: {exc}"
        run["alerts"] = len(alerts)
        seconds["alerts"] = time.perf_counter() - t0
        if alerts and notifier is not None:
            notifier.notify(alerts)
        seconds["total"] = time.perf_counter() - started
        run["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        store.save_run(run)
        return run
    except BaseException as exc:
        run.update(status="failed", finished_at=utc_now_precise(), error=f"{type(exc).__name__}: {exc}")
        seconds["total"] = time.perf_counter() - started
        run["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        try:
            store.save_run(run)
        finally:
            raise


def label_stragglers(store: VectorStore, slot: str) -> int:
    """Label tickets stored during the run (after its scan) against the clusters just switched to.

    Without this, a ticket ingested between the scan and the switch would carry no label in the
    new slot until the next run.
    """
    from constellate.assign import CentroidAssigner

    assigner = CentroidAssigner(store)
    missing = Filter(must=(IsEmpty(slot_field(slot, "cluster_id")),))
    done = 0
    for page in store.iter_vectors(page_size=1024, filter=missing):
        labels = assigner.label(page.vectors)
        store.set_payloads([(pid, payload) for pid, payload in zip(page.ids, labels, strict=True) if payload])
        done += len(page.ids)
    return done


def read_all(store: VectorStore, live_slot: str | None, page_size: int = 2048) -> Scan:
    """Scan every ticket vector with its live cluster id.

    Only labels a recluster wrote count as membership (-1 otherwise): a label given at ingest is a
    nearest-centroid guess, and counting it would let a new topic's tickets, all guessed into one
    old cluster, take over that cluster's id.
    """
    key = slot_field(live_slot, "cluster_id") if live_slot else None
    by = slot_field(live_slot, "assigned_by") if live_slot else None
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    prev: list[int] = []
    cleared: list[bool] = []
    fields = [key, by, NOT_OUTLIER] if key and by else [NOT_OUTLIER]
    for page in store.iter_vectors(page_size=page_size, fields=fields):
        ids.extend(page.ids)
        blocks.append(page.vectors)
        for payload in page.payloads:
            value = payload.get(key) if key else None
            known = isinstance(value, int) and not isinstance(value, bool) and payload.get(by) == "recluster"
            prev.append(int(value) if known else -1)
            cleared.append(payload.get(NOT_OUTLIER) == "no")
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, 0), dtype=np.float32)
    return Scan(ids, vectors, np.asarray(prev, dtype=np.int64), np.asarray(cleared, dtype=bool))


def build_catalogue(
    store: VectorStore,
    scan: Scan,
    result: ClusterResult,
    lineage: Lineage,
    previous: list[Any],
    namer: Namer | None,
    settings: Settings,
    run_id: str,
) -> list[dict[str, Any]]:
    """Catalogue entries for this run: size, keywords, name (kept, drifted or pinned), exemplars, lineage."""
    rng = np.random.default_rng(settings.seed)
    k = result.n_clusters
    members = [np.flatnonzero(result.labels == c) for c in range(k)]
    sample_rows = [
        m if len(m) <= NAMING_DOCS else np.sort(rng.choice(m, NAMING_DOCS, replace=False)) for m in members
    ]
    exemplar_rows = [m[np.argsort(-result.similarity[m])[: settings.exemplars]] for m in members]
    wanted = sorted({int(i) for rows in (*sample_rows, *exemplar_rows) for i in rows})
    payload_by_row: dict[int, dict[str, Any]] = {}
    for start in range(0, len(wanted), 1024):
        rows = wanted[start : start + 1024]
        records = store.get_points([scan.ids[i] for i in rows])
        by_id = {r.id: r.payload for r in records}
        for i in rows:
            payload_by_row[i] = by_id.get(scan.ids[i], {})
    docs = [[str(payload_by_row[int(i)].get("text", "")) for i in rows] for rows in sample_rows]
    keywords = namer.keywords(docs, result.centroids) if namer is not None else [[] for _ in range(k)]

    prev_by_id = {int(r.payload["cluster_id"]): r.payload for r in previous}
    continued = {e["cluster_id"] for e in lineage.events if e["event"] == "continued"}
    taken: set[str] = set()
    entries: list[dict[str, Any]] = []
    # Keep names first (pinned, then undrifted continued clusters) so new names avoid them.
    order = sorted(range(k), key=lambda c: (lineage.ids[c] not in continued, c))
    drafts: dict[int, dict[str, Any]] = {}
    for c in order:
        cid = lineage.ids[c]
        prev = prev_by_id.get(cid) if cid in continued else None
        kws = keywords[c][: settings.name_keywords]
        if prev and prev.get("pinned"):
            name, name_keywords, pinned = prev["name"], prev.get("name_keywords", kws), True
            taken.add(name)
        elif prev and keyword_overlap(prev.get("name_keywords", []), kws) >= settings.name_drift:
            name, name_keywords, pinned = prev["name"], prev.get("name_keywords", kws), False
            taken.add(name)
        else:
            name, name_keywords, pinned = None, kws, False
        drafts[c] = {"name": name, "name_keywords": name_keywords, "pinned": pinned, "keywords": kws}
    for c in order:
        if drafts[c]["name"] is None:
            drafts[c]["name"] = make_name(drafts[c]["keywords"], taken)
    for c in range(k):
        cid = lineage.ids[c]
        prev = prev_by_id.get(cid)
        entries.append(
            {
                "cluster_id": cid,
                **drafts[c],
                "size": len(members[c]),
                "exemplars": [str(payload_by_row[int(i)].get("ticket_id", "")) for i in exemplar_rows[c]],
                "parents": lineage.parents[c],
                "born_run": (prev or {}).get("born_run", run_id) if cid in continued else run_id,
                "updated_run": run_id,
            }
        )
    return entries


def internal_metrics(vectors: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float | None]:
    """Silhouette (cosine) and Davies-Bouldin on a sample of at most 5,000 tickets."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    n = len(labels)
    if len(np.unique(labels)) < 2 or n < 3:
        return {"silhouette": None, "davies_bouldin": None}
    rows = np.arange(n)
    if n > METRICS_SAMPLE:
        rows = np.random.default_rng(seed).choice(n, METRICS_SAMPLE, replace=False)
    x, y = vectors[rows], labels[rows]
    if len(np.unique(y)) < 2:
        return {"silhouette": None, "davies_bouldin": None}
    return {
        "silhouette": round(float(silhouette_score(x, y, metric="cosine")), 4),
        "davies_bouldin": round(float(davies_bouldin_score(x, y)), 4),
    }


def _alerts(
    store: VectorStore,
    run: dict[str, Any],
    catalogue: list[dict[str, Any]],
    scan: Scan,
    outlier: np.ndarray,
    settings: Settings,
) -> list[dict[str, Any]]:
    """Detect and store this run's alerts."""
    rows = np.flatnonzero(outlier)
    history = [
        r
        for r in store.list_runs(limit=10)
        if r.get("status") == "succeeded" and r["run_id"] != run["run_id"]
    ]

    def tickets_for(picked: Any) -> list[dict[str, Any]]:
        return [r.payload for r in store.get_points([scan.ids[rows[i]] for i in picked])]

    last_group = next((a for a in store.list_records(ALERT_KIND) if a.get("rule") == "outlier_group"), {})

    found = detect_alerts(
        run,
        catalogue,
        history,
        scan.vectors[rows],
        tickets_for,
        settings.alert_min_size,
        settings.alert_growth_factor,
        set(last_group.get("ticket_ids", [])),
    )
    for alert in found:
        store.save_record(ALERT_KIND, alert["alert_id"], alert)
    return found


def _abandon_stale_runs(store: VectorStore) -> None:
    """Runs still marked running were cut off (a killed worker); the caller holds the run lock."""
    for old in store.list_runs(limit=20):
        if old.get("status") == "running":
            old.update(status="failed", error="abandoned: the process running it stopped")
            store.save_run(old)
