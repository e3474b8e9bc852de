"""One recluster run as a short sequence of named stages.

    claim -> [sync] -> sample -> fit -> match -> name -> map -> write -> count -> catalogue -> switch
    -> after_switch -> alerts (and a background optimise)

A run is *full* (a rebase: it adopts a fresh fit and relabels every ticket) or *incremental* (it
keeps the live clusters and adds the fit's new ones, reading only what changed): :mod:`.mode`.

``prepare`` runs the stages up to ``write`` and returns a :class:`Plan`; ``label_range`` (the write
stage) can run here or as several Celery tasks over id ranges; ``finish`` takes the parts' counts
and does the rest. ``recluster`` chains the three in one process. A run that raises before its
switch is recorded as failed and leaves the previous labels and catalogue live.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from constellate.alerts import ALERT_KIND, Notifier, detect_alerts
from constellate.clustering import Fit, OutlierScale, build_cluster_model
from constellate.config import Settings
from constellate.ids import reserve_ids
from constellate.labels import other_slot
from constellate.mapping import map_layout
from constellate.naming import Namer
from constellate.optimizer import BackgroundOptimizer
from constellate.pipeline.claim import Claimed, claim_run
from constellate.pipeline.counts import Counts, count_labels
from constellate.pipeline.entries import catalogue_entries
from constellate.pipeline.label import PartResult, assign, copy_labels, label_range
from constellate.pipeline.mode import (
    fingerprint,
)
from constellate.pipeline.name import keep_entries, name_clusters
from constellate.pipeline.plan import (
    FULL,
    INCREMENTAL,
    Matched,
    Plan,
    build_incremental_plan,
    build_plan,
    match,
)
from constellate.pipeline.sample import Sample, read_sample
from constellate.pipeline.switch import (
    after_switch,
    catch_up_edits,
    switch,
)
from constellate.pipeline.timing import Progress, Stages
from constellate.pipeline.topics import fit_topics, keep_topics, topic_view
from constellate.run_lock import Lease, NoLease
from constellate.store.base import Record, VectorStore
from constellate.tickets import utc_now_precise

log = logging.getLogger(__name__)

METRICS_SAMPLE = 5000


def recluster(
    store: VectorStore,
    settings: Settings,
    namer: Namer | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    notifier: Notifier | None = None,
    lease: Lease | None = None,
    optimizer: BackgroundOptimizer | None = None,
    full: bool = False,
) -> dict[str, Any]:
    """Run one recluster in this process and return the run record (``full``: a rebase even when
    an incremental run would do, see :func:`choose_mode`).

    ``lease`` is the run lock the caller holds (checked before every write and renewed before the
    switch); without one the caller must have the store to itself. Human edits are replayed after
    identity matching; after the switch, alerts are detected, stored and handed to ``notifier``
    (which must not block), and ``optimizer`` (if given) re-indexes in the background.
    """
    lease = lease or NoLease(run_id)
    stages = Stages(progress)
    plan = prepare(store, settings, namer, lease, stages, full=full)
    if isinstance(plan, dict):  # skipped
        return plan
    try:
        with stages.stage("write", "writing labels"):
            result = label_range(store, plan, lease, settings.recluster_page_size, seed=settings.seed)
    except BaseException as exc:
        fail(store, plan.record, exc, stages)
        raise
    return finish(store, settings, plan, [result], lease, stages, notifier, optimizer)


def prepare(
    store: VectorStore,
    settings: Settings,
    namer: Namer | None,
    lease: Lease,
    stages: Stages,
    full: bool = False,
) -> Plan | dict[str, Any]:
    """Claim the state, then sample, fit, match ids, name and lay out the map: the plan for the
    labelling pass. Returns the run record instead when there is nothing to cluster."""
    started = claim_run(store, settings, lease, stages, full)
    if isinstance(started, dict):
        return started
    try:
        return _plan_run(store, settings, namer, lease, stages, started)
    except BaseException as exc:
        fail(store, started.record, exc, stages)
        raise


def _plan_run(
    store: VectorStore, settings: Settings, namer: Namer | None, lease: Lease, stages: Stages, c: Claimed
) -> Plan | dict[str, Any]:
    """Sample, fit, match ids, group topics, name and lay out the map for a claimed run."""
    record, mode, live_slot, claimed = c.record, c.mode, c.live_slot, c.claimed
    if mode == INCREMENTAL:
        with stages.stage("sync", "finishing the last run's copy into the target slot"):
            record["synced"] = copy_labels(
                store, claimed["current_run"], live_slot, other_slot(live_slot), lease
            )
    with stages.stage("sample", "reading the fit sample"):
        sample = read_sample(
            store, settings.fit_sample_size, live_slot, settings.seed, settings.recluster_page_size
        )
        if len(sample):  # a store an older version wrote gets its indexes up to date (store.base)
            store.ensure_collections(sample.vectors.shape[1])
    if len(sample) == 0:
        record.update(status="skipped", reason="no tickets stored", finished_at=utc_now_precise(), n_points=0)
        store.save_run(record)
        return record
    with stages.stage("fit", f"clustering a sample of {len(sample)} tickets"):
        fit = build_cluster_model(settings, len(sample)).fit(sample.vectors)
    for name, seconds in fit.seconds.items():
        stages.add(name, seconds, inner=True)
    with stages.stage("match", f"matching {fit.n_clusters} clusters to the live ones"):
        common: dict[str, Any] = {
            "run_id": lease.run_id,
            "target": other_slot(live_slot),
            "first_run": live_slot is None,
            "claimed_version": int(claimed["version"]),
            "edit_ids": c.seen,
            "failed_runs": c.failed_runs,
            "live_slot": live_slot,
        }
        plan, previous, matched = match_and_plan(
            store, settings, mode, sample, fit, claimed, c.edits, c.recent_runs, common
        )
    with stages.stage("topics", f"grouping {len(plan.cluster_ids)} clusters into topics"):
        live_topics = store.list_clusters(claimed.get("current_run"), with_vector=True, level="topic")
        topics_stage = fit_topics if mode == FULL else keep_topics
        topics_stage(plan, sample, previous, live_topics, c.edits, lambda n: reserve_ids(store, n))
    named = plan.born if mode == INCREMENTAL else None
    with stages.stage("name", f"naming {len(plan.cluster_ids if named is None else named)} clusters"):
        name_levels(plan, sample, previous, live_topics, matched.effect.renames, namer, settings, named)
    with stages.stage("map", "laying out the map sample"):
        map_rows = _map(store, plan, sample, settings)
    record.update(
        algorithm=fit.params.get("algorithm"),
        params=fit.params,
        fit_size=len(sample),
        noise_fraction=round(float(fit.noise.mean()), 4),
        map_points=map_rows,
        born=len(plan.born) if mode == INCREMENTAL else None,
        **internal_metrics(sample, plan, settings.seed),
    )
    plan.record = record
    record["seconds"] = stages.rounded()
    store.save_run(record)
    return plan


def match_and_plan(
    store: VectorStore,
    settings: Settings,
    mode: str,
    sample: Sample,
    fit: Fit,
    claimed: dict[str, Any],
    edits: list[dict[str, Any]],
    recent_runs: list[str],
    common: dict[str, Any],
) -> tuple[Plan, list[Record], Matched]:
    """The match stage: the fit's clusters matched to the live ones (edits replayed), and the plan
    for the labelling pass — a full one, or an incremental one that keeps the live clusters (the
    sample then takes its labels from it). Also returns the live catalogue and the match."""
    previous = store.list_clusters(claimed.get("current_run"), with_vector=True)
    prev_centroids = {int(r.payload["cluster_id"]): r.vector for r in previous if r.vector is not None}
    first_new = reserve_ids(store, fit.n_clusters + 1)
    matched = match(sample, fit, prev_centroids, edits, first_new)
    tolerance, margin = settings.outlier_score_tolerance, settings.label_stay_margin
    if mode == FULL:
        plan = build_plan(store, sample, fit, matched, tolerance, settings.outlier_share, margin, **common)
        return plan, previous, matched
    scale = OutlierScale.from_dict(claimed["outlier_scale"])
    plan = build_incremental_plan(
        sample,
        fit,
        matched.lineage,
        previous,
        scale,
        edits,
        tolerance,
        margin,
        recent_runs=recent_runs,
        **common,
    )
    rows = assign(sample.vectors, sample.ids, sample.prev_labels, sample.prev_labels >= 0, plan)
    plan.sample_labels = {pid: plan.cluster_ids[r] for pid, r in zip(sample.ids, rows, strict=True)}
    return plan, previous, matched


def name_levels(
    plan: Plan,
    sample: Sample,
    previous: list[Record],
    live_topics: list[Record],
    renames: dict[int, tuple[str, bool]],
    namer: Namer | None,
    settings: Settings,
    named: list[int] | None,
) -> None:
    """The plan's catalogue at both levels: clusters named (all of them, or only the ``named``
    born ones of an incremental run, apart from the live topics' names), then topics named apart
    from the clusters (an incremental run keeps the live topics' entries)."""

    def name(view: Plan, entries: dict[int, dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
        return name_clusters(
            view,
            sample,
            entries,
            renames,
            namer,
            settings.name_keywords,
            settings.name_drift,
            settings.exemplars,
            settings.seed,
            **kw,
        )

    previous_entries = {int(r.payload["cluster_id"]): r.payload for r in previous}
    if named is None:
        plan.catalogue = name(plan, previous_entries)
    else:
        taken = {str(r.payload.get("name", "")) for r in live_topics}
        plan.catalogue = keep_entries(
            plan, previous_entries, name(plan, previous_entries, rows=named, taken=taken)
        )
    topics = topic_view(plan)
    previous_topics = {int(r.payload["cluster_id"]): r.payload for r in live_topics}
    if named is not None and plan.had_topics:
        plan.topic_catalogue = keep_entries(topics, previous_topics, [])
    else:
        plan.topic_catalogue = name(topics, previous_topics, taken={str(e["name"]) for e in plan.catalogue})


def finish(
    store: VectorStore,
    settings: Settings,
    plan: Plan,
    parts: list[PartResult],
    lease: Lease,
    stages: Stages,
    notifier: Notifier | None = None,
    optimizer: BackgroundOptimizer | None = None,
) -> dict[str, Any]:
    """Write the catalogue with the counted sizes, switch (fenced), repair, alert, optimise."""
    record = plan.record
    try:
        total = PartResult()
        for part in parts:
            total = total.merge(part)
        with stages.stage("count", "counting the target slot's labels"):
            counts = count_labels(store, plan.target, len(plan.cluster_ids), settings.seed)
        with stages.stage("catalogue", "writing the catalogue"):
            entries, centroids = catalogue_entries(store, plan, counts)
            lease.check()
            store.upsert_clusters(plan.run_id, entries, centroids)
        record.update(
            status="succeeded",
            n_points=counts.n,
            n_read=total.n,
            n_clusters=sum(1 for e in entries if e["level"] == "cluster"),
            n_topics=sum(1 for e in entries if e["level"] == "topic"),
            outlier_fraction=round(counts.outliers / counts.n, 4) if counts.n else 0.0,
            written=total.written,
            unchanged=counts.n - total.written,
            events=plan.lineage_events,
            sizes={str(e["cluster_id"]): int(e["size"]) for e in entries},
        )
        rebase = plan.mode == FULL
        state = store.get_state()
        with stages.stage("switch", "switching readers to the new labels"):
            lease.confirm()
            switch(
                store,
                {**state, "version": plan.claimed_version},
                plan.run_id,
                {
                    "slot": plan.target,
                    "next_cluster_id": plan.next_id,
                    "outlier_scale": plan.scale.to_dict(),
                    "tickets_at_run": counts.n,
                    "first_run": plan.run_id if plan.first_run else state.get("first_run"),
                    "runs_since_rebase": 0 if rebase else int(state.get("runs_since_rebase", 0)) + 1,
                    "rebase_run": plan.run_id if rebase else state.get("rebase_run"),
                    "rebase_tickets": counts.n if rebase else state.get("rebase_tickets", counts.n),
                    "rebase_fingerprint": fingerprint(settings)
                    if rebase
                    else state.get("rebase_fingerprint"),
                },
            )
            record["finished_at"] = utc_now_precise()
    except BaseException as exc:
        fail(store, record, exc, stages)
        raise
    with stages.stage("after_switch", "repairing what changed during the run"):
        try:
            _repair_and_prune(store, settings, plan, record)
        except Exception as exc:  # switched already: the next run repairs the rest
            log.exception("after-switch repair failed")
            record["after_switch_error"] = f"{type(exc).__name__}: {exc}"
    with stages.stage("alerts", "looking for emerging clusters"):
        try:
            alerts = _alerts(store, record, entries, counts, settings)
        except Exception as exc:  # the run has switched: a failing alert check must not mark it failed
            log.exception("alert detection failed")
            alerts, record["alerts_error"] = [], f"{type(exc).__name__}: {exc}"
        record["alerts"] = len(alerts)
    if alerts and notifier is not None:
        notifier.notify(alerts)
    record["seconds"] = stages.rounded()
    store.save_run(record)
    if optimizer is not None:  # last: the embedded engine's optimize holds the GIL while it runs
        optimizer.request()
    return record


def _repair_and_prune(store: VectorStore, settings: Settings, plan: Plan, record: dict[str, Any]) -> None:
    """After the switch: repair what changed during the run, copy its labels into the other slot,
    re-apply edits the copy may have overwritten, and prune old catalogues, maps, runs and alerts."""
    seen = set(plan.edit_ids)
    record.update(after_switch(store, plan.run_id, plan.target, seen, plan.failed_runs))
    record["edits_seen"] = sorted(seen)  # in this run's catalogue (incremental runs keep it)
    if not plan.first_run:
        record["copied"] = copy_labels(
            store, plan.run_id, plan.target, page_size=settings.recluster_page_size
        )
        # an edit made while the copy ran may have had its other-slot labels overwritten by it:
        # apply the late ones again (idempotent)
        late = catch_up_edits(store, seen)
        record["late_edits"] += len(late)
        record["edits_seen"] = sorted(seen | set(late))
    store.prune_clusters(keep_run_id=plan.run_id)
    store.prune_map(keep_run_id=plan.run_id)
    store.prune_records("run", settings.keep_runs)
    store.prune_records(ALERT_KIND, settings.keep_alerts)
    record["after_switch_done"] = True


def fail(store: VectorStore, record: dict[str, Any], exc: BaseException, stages: Stages) -> None:
    """Record a run that stopped before its switch (readers still see the previous run)."""
    record.update(status="failed", finished_at=utc_now_precise(), error=f"{type(exc).__name__}: {exc}")
    record["seconds"] = stages.rounded()
    try:
        store.save_run(record)
    except Exception:  # the store itself failed: the next run marks this one abandoned
        log.exception("could not record the failed run %s", record.get("run_id"))


def _map(store: VectorStore, plan: Plan, sample: Sample, settings: Settings) -> int:
    """2-D coordinates for (a prefix of) the sample, stored under this run's id."""
    rows, coords = map_layout(sample.vectors, settings.map_points, settings.seed)
    if len(rows) == 0:
        return 0
    row_of = plan.row_of()
    scores = plan.scale.score(
        1.0
        - np.einsum(
            "ij,ij->i",
            sample.vectors[rows],
            plan.centroids[[row_of[plan.sample_labels[sample.ids[r]]] for r in rows]],
        )
    )
    flags = plan.scale.is_outlier(scores) & ~sample.not_outlier[rows]
    store.save_map(
        plan.run_id,
        [
            {
                "ticket_id": sample.ticket_ids[r],
                "x": round(float(coords[j, 0]), 4),
                "y": round(float(coords[j, 1]), 4),
                "cluster_id": plan.sample_labels[sample.ids[r]],
                "is_outlier": bool(flags[j]),
                "text": sample.texts[r][:300],
            }
            for j, r in enumerate(rows)
        ],
    )
    return len(rows)


def internal_metrics(sample: Sample, plan: Plan, seed: int) -> dict[str, float | None]:
    """Silhouette (cosine) and Davies-Bouldin on at most 5,000 tickets of the fit sample."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    labels = np.array([plan.sample_labels[pid] for pid in sample.ids])
    n = len(labels)
    if n < 3 or len(np.unique(labels)) < 2:
        return {"silhouette": None, "davies_bouldin": None}
    rows = np.arange(n)
    if n > METRICS_SAMPLE:
        rows = np.random.default_rng(seed).choice(n, METRICS_SAMPLE, replace=False)
    x, y = sample.vectors[rows], labels[rows]
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
    total: Counts,
    settings: Settings,
) -> list[dict[str, Any]]:
    """Detect and store this run's alerts (the outlier group among a uniform sample of outliers)."""
    history = [
        r
        for r in store.list_runs(limit=12)
        if r.get("status") == "succeeded" and r["run_id"] != run["run_id"]
    ]
    ids = total.outlier_ids
    records = store.get_points(ids, with_vector=True, fields=["ticket_id", "text"]) if ids else []
    vectors = np.stack([r.vector for r in records]) if records else np.zeros((0, 1), dtype=np.float32)

    def tickets_for(picked: Any) -> list[dict[str, Any]]:
        return [records[i].payload for i in picked]

    last_group = next(
        (a for a in store.list_records(ALERT_KIND, limit=50) if a.get("rule") == "outlier_group"), {}
    )
    found = detect_alerts(
        run,
        catalogue,
        history,
        vectors,
        tickets_for,
        settings.alert_min_size,
        settings.alert_growth_factor,
        set(last_group.get("ticket_ids", [])),
    )
    for alert in found:
        store.save_record(ALERT_KIND, alert["alert_id"], alert)
    return found
