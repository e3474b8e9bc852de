"""Claim, switch and after-switch: the only writes of the service state, each a compare-and-set.

A run *claims* the state before it reads anything (``claim`` = its run id, version v -> v+1). Its
switch is conditional on the version it claimed: a newer run's claim in between makes the switch
fail, so a run that stalled past its lease can never switch over a newer one (the fence). After the
switch the run repairs what happened while it ran: edits stored since it read them, tickets labelled
at ingest against the old run, stray labels of runs that never switched, and the other label slot.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from constellate.assign import CentroidAssigner
from constellate.edits import apply_to_live, enforce_ticket_edits, list_edits, mark_applied, mark_edited
from constellate.exceptions import LeaseLost
from constellate.labels import INGEST, NOT_OUTLIER, slot_field
from constellate.run_lock import Lease
from constellate.store.base import Filter, IsEmpty, Match, MatchAny, VectorStore
from constellate.tickets import utc_now_precise

log = logging.getLogger(__name__)

CLAIM_TRIES = 20


def claim(store: VectorStore, run_id: str) -> dict[str, Any]:
    """Claim the state for ``run_id``; returns the claimed state (with its ``version``).

    Only runs write the state and only the lock holder starts one, so a lost compare-and-set means a
    run raced us without the lock: try again on the fresh state.
    """
    for _ in range(CLAIM_TRIES):
        state = store.get_state()
        version = int(state.get("version", 0))
        wanted = {k: v for k, v in state.items() if k != "version"}
        wanted.update(claim=run_id, claimed_at=utc_now_precise())
        if store.swap_state(version, wanted):
            return {**wanted, "version": version + 1}
    raise LeaseLost(f"run {run_id} could not claim the state")


def abandon_stale_runs(store: VectorStore, run_id: str) -> list[str]:
    """Mark runs still ``running`` (other than ``run_id``) failed: our claim superseded them, so none
    of them can switch any more. Returns their ids (their stray labels are repaired after our switch).

    The live run is the exception: it switched and its process stopped before it saved its record,
    so it is recorded succeeded (:func:`record_switched`), never failed — a failed live run would
    make the next pass rewrite every label it wrote.
    """
    live = store.get_state().get("current_run")
    stale = []
    for old in store.list_runs(limit=20):
        if old.get("status") != "running" or old["run_id"] == run_id:
            continue
        if old["run_id"] == live:
            record_switched(store, old, f"stopped after its switch; run {run_id} repairs")
        else:
            old.update(status="failed", error="abandoned: superseded by run " + run_id)
            store.save_run(old)
            stale.append(old["run_id"])
    return stale


def record_switched(store: VectorStore, record: dict[str, Any], note: str) -> dict[str, Any]:
    """Record as succeeded a run that switched but stopped before saving its record, with its sizes
    read from its catalogue (the next run's size history and growth alerts need them)."""
    state = store.get_state()
    sizes = {
        str(int(r.payload["cluster_id"])): int(r.payload.get("size", 0))
        for r in store.list_clusters(record["run_id"])
    }
    record.update(
        status="succeeded",
        finished_at=record.get("finished_at") or state.get("switched_at") or utc_now_precise(),
        sizes=record.get("sizes") or sizes,
        n_clusters=record.get("n_clusters", len(sizes)),
        n_points=record.get("n_points", sum(sizes.values())),
        after_switch_error=note,
    )
    store.save_run(record)
    return record


def still_claimed(store: VectorStore, run_id: str) -> bool:
    """Whether ``run_id`` still holds the state's claim (claimed, not switched, no newer claim)."""
    return store.get_state().get("claim") == run_id


class FencedLease:
    """A lease that also re-reads the store's claim every ``every`` seconds: a task that carries on a
    run after a gap (a redelivered part) stops writing once a newer run has claimed the store, even if
    it could take the Redis lock again."""

    def __init__(self, lease: Lease, store: VectorStore, every: float = 10.0) -> None:
        self.lease, self.store, self.every = lease, store, every
        self.run_id = lease.run_id
        self._verified = 0.0

    def _verify(self) -> None:
        if not still_claimed(self.store, self.run_id):
            raise LeaseLost(f"run {self.run_id} no longer holds the store's claim (a newer run claimed it)")
        self._verified = time.monotonic()

    def check(self) -> None:
        self.lease.check()
        if time.monotonic() - self._verified >= self.every:
            self._verify()

    def confirm(self) -> None:
        self.lease.confirm()
        self._verify()


def switch(
    store: VectorStore, claimed: dict[str, Any], run_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """Make this run live in one conditional write; raise :class:`LeaseLost` if a newer run claimed."""
    version = int(claimed["version"])
    state = {k: v for k, v in claimed.items() if k not in ("version", "claim", "claimed_at")}
    state.update(fields, current_run=run_id, switched_at=utc_now_precise())
    if not store.swap_state(version, state):
        raise LeaseLost(f"run {run_id} was superseded by a newer run's claim; it did not switch")
    return {**state, "version": version + 1}


def catch_up_edits(store: VectorStore, seen: set[str]) -> list[str]:
    """Apply the edits the run's result does not include (stored or applied after it read them);
    returns their ids. Applying is idempotent, so this may run more than once."""
    late = [e for e in list_edits(store) if e["edit_id"] not in seen]
    for edit in sorted(late, key=lambda e: str(e.get("created_at", ""))):
        mark_applied(store, edit, apply_to_live(store, edit))
    if late:
        mark_edited(store, utc_now_precise())
    return [e["edit_id"] for e in late]


def unknown_cluster_ids(store: VectorStore, run_id: str, slot: str) -> tuple[int, ...]:
    """Cluster ids labels in ``slot`` hold that neither ``run_id``'s catalogue nor a stored edit
    names: one facet over the index (bounded by the number of cluster ids, not of tickets), read
    before the catalogue and the edits (a human split writes its edit record, then the tickets' new
    id, then its catalogue entry, so an id the facet sees is in one of the two when they are read)."""
    used = [int(c) for c in store.facet(slot_field(slot, "cluster_id"))]
    known = {int(r.payload["cluster_id"]) for r in store.list_clusters(run_id)}
    unknown = [c for c in used if c not in known]
    if unknown:  # the edits are read only then (normally never)
        named = {int(e[f]) for e in list_edits(store) for f in ("cluster_id", "into") if e.get(f) is not None}
        unknown = [c for c in unknown if c not in named]
    return tuple(sorted(unknown))


def relabel_strays(
    store: VectorStore, run_id: str, slot: str, failed_runs: list[str], page: int = 1024
) -> int:
    """Relabel, against the run just switched to, every ticket whose live label names another run (or
    none): stored during the run without a label, labelled at ingest against an older run, or
    labelled by a failed run that wrote before it stopped — found by its run id, or, for a failed
    first run (whose labels name no run), by a cluster id the live catalogue does not hold."""
    assigner = CentroidAssigner(store)
    key = slot_field(slot, "cluster_id")
    label_run, by = slot_field(slot, "label_run"), slot_field(slot, "assigned_by")
    filters = [
        Filter(must=(IsEmpty(key),)),
        Filter(must=(Match(by, INGEST),), must_not=(Match(label_run, run_id),)),
    ]
    if failed_runs:
        filters.append(Filter(must=(MatchAny(label_run, tuple(failed_runs)),)))
    unknown = unknown_cluster_ids(store, run_id, slot)
    if unknown:
        filters.append(Filter(must=(MatchAny(key, unknown),)))
    done = 0
    for flt in filters:
        # read first, then write: relabelled tickets leave the filter, which would shift the pages
        pages = list(store.iter_vectors(page_size=page, fields=[NOT_OUTLIER], filter=flt))
        for p in pages:
            cleared = np.array([pl.get(NOT_OUTLIER) == "no" for pl in p.payloads], dtype=bool)
            used, labels = assigner.label(p.vectors, cleared)
            if used != run_id:
                return done  # an even newer run switched: it repairs from here
            store.set_payloads([(pid, lab) for pid, lab in zip(p.ids, labels, strict=True) if lab])
            done += len(p.ids)
    return done


def after_switch(
    store: VectorStore, run_id: str, slot: str, seen_edits: set[str], failed_runs: list[str]
) -> dict[str, int]:
    """Repairs after the switch (each bounded by what happened during the run, not by the history).
    The late edits it applies are added to ``seen_edits``."""
    late = catch_up_edits(store, seen_edits)
    seen_edits.update(late)
    return {
        "late_edits": len(late),
        "relabelled": relabel_strays(store, run_id, slot, failed_runs),
        "cleared_outliers": enforce_ticket_edits(store, slot),
    }
