"""The claim stage of a run: the state claimed, the mode chosen, the edits listed, the run recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from constellate.config import Settings
from constellate.edits import list_edits
from constellate.labels import other_slot
from constellate.pipeline.mode import choose_mode, in_live_catalogue, nothing_changed, runs_since_rebase
from constellate.pipeline.plan import FULL, INCREMENTAL
from constellate.pipeline.switch import abandon_stale_runs, claim
from constellate.pipeline.timing import Stages
from constellate.run_lock import Lease
from constellate.store.base import VectorStore
from constellate.tickets import utc_now_precise


@dataclass
class Claimed:
    """What the claim stage read: the state it claimed, the run's mode, record and edits."""

    claimed: dict[str, Any]
    live_slot: str | None
    mode: str
    record: dict[str, Any]
    edits: list[dict[str, Any]]
    seen: list[str]
    failed_runs: list[str]
    recent_runs: list[str]


def claim_run(
    store: VectorStore, settings: Settings, lease: Lease, stages: Stages, full: bool
) -> Claimed | dict[str, Any]:
    """The claim stage: the state claimed, the mode chosen, the edits listed and the run recorded;
    the record of a skipped run instead when nothing changed since the live one."""
    run_id = lease.run_id
    with stages.stage("claim", f"run {run_id}"):
        lease.check()
        claimed = claim(store, run_id)
        abandon_stale_runs(store, run_id)
        latest = store.list_runs(limit=max(20, settings.rebase_every_runs + 1))
        failed_runs = [r["run_id"] for r in latest if r.get("status") == "failed"]
        recent_runs = runs_since_rebase(latest, claimed.get("rebase_run"))
    live_slot: str | None = claimed.get("slot")
    mode, why = choose_mode(settings, claimed, store.count(), full)
    record: dict[str, Any] = {
        "run_id": run_id,
        "started_at": utc_now_precise(),
        "status": "running",
        "slot": other_slot(live_slot),
        "parts": settings.recluster_parts,
        "mode": mode,
        "mode_reason": why,
    }
    # Edits are listed before anything else is read. A full run replays them all; an incremental
    # one keeps the live catalogue, so it counts as seen only the edits already in it (applied to
    # the live run, or in its result); the rest are applied again after its switch.
    edits = list_edits(store)
    seen = [e["edit_id"] for e in edits] if mode == FULL else in_live_catalogue(store, claimed, edits)
    if mode == INCREMENTAL and len(seen) == len(edits) and nothing_changed(store, claimed, failed_runs):
        record.update(
            status="skipped",
            reason=f"nothing changed since run {claimed['current_run']}",
            finished_at=utc_now_precise(),
            n_points=store.count(),
        )
        return record  # not stored: a skip leaves no trace in the run history (as the beat's skip)
    record["edits_seen"] = seen
    store.save_run(record)
    return Claimed(claimed, live_slot, mode, record, edits, seen, failed_runs, recent_runs)
