"""Which kind of run this is: full (a rebase), incremental, or skipped because nothing changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from constellate.config import Settings
from constellate.labels import other_slot
from constellate.pipeline.label import unsettled_filter
from constellate.pipeline.plan import FULL, INCREMENTAL
from constellate.pipeline.switch import unknown_cluster_ids
from constellate.store.base import VectorStore


def fingerprint(settings: Settings) -> str:
    """The settings a fit depends on: a change makes the next run a full one."""
    keys = ("model", "algorithm", "reduction", "fit_sample_size", "min_cluster_size", "n_clusters")
    keys += ("dbscan_eps", "outlier_share", "seed")
    return ";".join(f"{k}={getattr(settings, k)}" for k in keys)


def choose_mode(settings: Settings, state: dict[str, Any], n_tickets: int, full: bool) -> tuple[str, str]:
    """Full or incremental, and why.

    Full when asked, on the first run, when the store fits in the fit sample (a full pass then costs
    no more than an incremental one), after ``rebase_every_runs`` incremental runs, once the store
    grew by ``rebase_growth`` since the last full run, or when the clustering settings changed.
    """
    if full:
        return FULL, "asked for"
    if not state.get("current_run") or not state.get("outlier_scale") or not state.get("slot"):
        return FULL, "first run"
    if settings.recluster_mode == "full":
        return FULL, "recluster_mode is full"
    if settings.recluster_mode == "incremental":
        return INCREMENTAL, "recluster_mode is incremental"
    if n_tickets <= settings.fit_sample_size:
        return FULL, "the store fits in the fit sample"
    since = int(state.get("runs_since_rebase", settings.rebase_every_runs))
    if since >= settings.rebase_every_runs:
        return FULL, f"{since} runs since the last full run"
    base = int(state.get("rebase_tickets", 0))
    if n_tickets >= (1.0 + settings.rebase_growth) * base:
        return FULL, f"tickets grew from {base} to {n_tickets} since the last full run"
    if state.get("rebase_fingerprint") != fingerprint(settings):
        return FULL, "the clustering settings changed"
    return INCREMENTAL, f"{since} runs and {n_tickets - base} tickets since the last full run"


def runs_since_rebase(latest: list[dict[str, Any]], rebase_run: str | None) -> list[str]:
    """The incremental runs that succeeded since the last full one (``latest`` is newest first);
    none when that full run is not among ``latest`` (older labels could not be told apart)."""
    out = []
    for r in latest:
        if r["run_id"] == rebase_run:
            return out
        if r.get("mode") == INCREMENTAL and r.get("status") == "succeeded":
            out.append(r["run_id"])
    return []


def in_live_catalogue(store: VectorStore, state: dict[str, Any], edits: list[dict[str, Any]]) -> list[str]:
    """The ids of ``edits`` whose effect is in the live run's catalogue and labels: those the live
    run replayed or caught up (its ``edits_seen``) and those applied to it since (``applied_to``).
    An edit stored but not yet applied (or whose process died applying it) is not among them, nor
    is one applied to a live run whose after-switch stage did not finish."""
    live = state.get("current_run")
    record = (store.get_run(live) or {}) if live else {}
    done = set(record.get("edits_seen", []))
    # applied_to the live run counts only once its after-switch stage finished: an edit applied
    # while its copy between the slots ran may have had its hidden-slot labels overwritten
    trusted = bool(record.get("after_switch_done"))
    return [e["edit_id"] for e in edits if e["edit_id"] in done or (trusted and e.get("applied_to") == live)]


def nothing_changed(store: VectorStore, state: dict[str, Any], failed_runs: Sequence[str]) -> bool:
    """True when an incremental run would find what the live run found: no ticket is unsettled
    (new, guessed at ingest, re-ingested, or written by a failed run), none was deleted, and no live
    label names a cluster the live catalogue lacks (a superseded first run's write that landed after
    the repair of the switch that beat it; the run's after-switch repair relabels it). The fit is
    seeded and its sample would be the same tickets, so the run is skipped instead (two counts and
    one facet on indexed fields). Edits need no run: they change the live catalogue and labels
    themselves."""
    live = store.get_run(state["current_run"]) or {}
    target = other_slot(state.get("slot"))
    if store.count(unsettled_filter(state.get("slot"), target, failed_runs)):
        return False
    if store.count() != int(live.get("n_points", -1)):
        return False
    return not unknown_cluster_ids(store, state["current_run"], state["slot"])
