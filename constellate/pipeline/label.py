"""Assign + write stage: a pass over (a range of) the store, page by page, writing only what changed.

A full plan's pass reads every ticket; an incremental plan's pass reads only the tickets that need a
label (never labelled, guessed at ingest, written by a failed run) and the labelled ones within reach
of a cluster the run adds (an exact search around each born centroid). For each page: the cluster
(nearest centroid, with hysteresis for labels a run wrote), the outlier score on the run's scale, and
a comparison with what the run's target slot already holds. A ticket is written only if its cluster
differs, its outlier flag flips, its score moved more than the tolerance, or no run labelled it
there. Writes are grouped by payload (:mod:`.writer`): made by the pass against qdrant-edge, from a
thread against a server. The pass holds one page and the plan — never the whole matrix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from constellate.labels import (
    INGEST,
    NOT_OUTLIER,
    RANK,
    SLOTS,
    by_a_run,
    other_slot,
    slot_field,
    slot_payload,
)
from constellate.pipeline.plan import FULL, Plan
from constellate.pipeline.writer import PAGES_HELD, GroupedWriter
from constellate.run_lock import Lease, NoLease
from constellate.store.base import Filter, IsEmpty, Match, MatchAny, VectorPage, VectorStore

TOP_BAND = 0.15  # scores this close below the outlier threshold (or above it) are kept to the tolerance
LABEL_NAMES = ("cluster_id", "is_outlier", "outlier_score", "assigned_by", "label_run", RANK)


def id_ranges(parts: int) -> list[tuple[str | None, str | None]]:
    """Split the point-id space into ``parts`` contiguous ranges (``start <= id < stop``; None = open).

    Point ids are UUIDv5 hashes, so each range holds about the same number of tickets.
    """
    bounds = [str(uuid.UUID(int=(i << 128) // parts)) for i in range(1, parts)]
    starts: list[str | None] = [None, *bounds]
    stops: list[str | None] = [*bounds, None]
    return list(zip(starts, stops, strict=True))


@dataclass
class PartResult:
    """What one pass (or part of one) read and wrote."""

    n: int = 0  # tickets read
    written: int = 0

    def merge(self, other: PartResult) -> PartResult:
        """Both parts' counts."""
        return PartResult(self.n + other.n, self.written + other.written)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "written": self.written}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartResult:
        return cls(int(data["n"]), int(data["written"]))


def unsettled(plan: Plan) -> Filter:
    """Tickets an incremental run must label: never labelled, guessed at ingest, or labelled in the
    target slot by a run that failed."""
    return unsettled_filter(plan.live_slot, plan.target, plan.failed_runs)


def unsettled_filter(live_slot: str | None, target: str, failed_runs: Sequence[str]) -> Filter:
    """:func:`unsettled` from the slots and the failed runs' ids (before there is a plan)."""
    live = live_slot or target
    conditions = [
        IsEmpty(slot_field(live, "cluster_id")),
        IsEmpty(slot_field(target, "cluster_id")),
        Match(slot_field(live, "assigned_by"), INGEST),
        Match(slot_field(target, "assigned_by"), INGEST),
    ]
    if failed_runs:
        conditions.append(MatchAny(slot_field(target, "label_run"), tuple(failed_runs)))
    return Filter(should=tuple(conditions))


def pages(
    store: VectorStore, plan: Plan, page_size: int, start: str | None = None, stop: str | None = None
) -> Iterator[VectorPage]:
    """The pages the plan's pass reads in ``start <= id < stop``: everything (full plan), or the
    unsettled tickets and then the labelled ones within ``plan.reach`` of a born centroid."""
    fields = [*(slot_field(plan.target, n) for n in LABEL_NAMES), NOT_OUTLIER]
    if plan.mode == FULL:
        yield from store.iter_vectors(page_size=page_size, fields=fields, start=start, stop=stop)
        return
    todo = unsettled(plan)
    yield from store.iter_vectors(page_size=page_size, fields=fields, filter=todo, start=start, stop=stop)
    settled = Filter(must_not=todo.should)
    near: set[str] = set()
    for row in plan.born:
        near.update(
            pid
            for pid, _ in store.near_ids(plan.centroids[row], plan.reach, settled)
            if (start is None or pid >= start) and (stop is None or pid < stop)
        )
    ids = sorted(near)
    for lo in range(0, len(ids), page_size):
        records = store.get_points(ids[lo : lo + page_size], with_vector=True, fields=fields)
        records = [r for r in records if r.vector is not None]
        if records:
            yield VectorPage(
                ids=[r.id for r in records],
                vectors=np.stack([r.vector for r in records]).astype(np.float32),
                payloads=[r.payload for r in records],
            )


def label_range(
    store: VectorStore,
    plan: Plan,
    lease: Lease,
    page_size: int = 2048,
    start: str | None = None,
    stop: str | None = None,
    seed: int = 0,
) -> PartResult:
    """Label the tickets the plan's pass reads in ``start <= point id < stop`` into its target slot."""
    result = PartResult()
    built: dict[tuple[Any, ...], dict[str, Any]] = {}  # the pass's distinct label payloads
    with GroupedWriter(store, lease, pending=PAGES_HELD * page_size) as writer:
        for page in pages(store, plan, page_size, start, stop):
            result.n += len(page.ids)
            for payload, ids in label_page(page, plan, built):
                writer.add_many(ids, payload)
        writer.flush()
        result.written = writer.written
    return result


def label_page(
    page: VectorPage, plan: Plan, built: dict[tuple[Any, ...], dict[str, Any]] | None = None
) -> list[tuple[dict[str, Any], list[str]]]:
    """The label writes one page needs: ``(payload, point ids)`` for each distinct payload of the
    tickets that changed. Labels repeat (a cluster, a flag, a score step), so each payload is built
    once per pass and kept in ``built`` (shared: never change one); a pass over 1M tickets builds a
    few thousand, not a million."""
    built = {} if built is None else built
    target = plan.target
    keys = {name: slot_field(target, name) for name in LABEL_NAMES}
    failed = set(plan.failed_runs)
    n = len(page.ids)
    old_ids = np.fromiter((_int(p.get(keys["cluster_id"])) for p in page.payloads), dtype=np.int64, count=n)
    # a label a failed run wrote is rewritten even if equal, so it names a run that switched; in a
    # first run no label is a switched run's (a failed first run's labels name no run, see below)
    by_run = np.fromiter(
        (
            not plan.first_run and by_a_run(p, target) and p.get(keys["label_run"]) not in failed
            for p in page.payloads
        ),
        dtype=bool,
        count=n,
    )
    rows = assign(page.vectors, page.ids, old_ids, by_run, plan)
    new_ids = np.asarray(plan.cluster_ids, dtype=np.int64)[rows]
    similarity = np.einsum("ij,ij->i", page.vectors, plan.centroids[rows])
    scores = plan.scale.score(1.0 - similarity)
    cleared = np.fromiter((p.get(NOT_OUTLIER) == "no" for p in page.payloads), dtype=bool, count=n)
    old_flags = [p.get(keys["is_outlier"]) for p in page.payloads]
    flags = plan.scale.is_outlier(scores)
    # a flag a run set flips only once the score is clearly past the threshold (the threshold
    # itself moves a little with every sample): no writes for tickets sitting on it
    band = min(plan.tolerance, (1.0 - plan.scale.threshold) / 2)  # never wider than half the share
    on_edge = by_run & (new_ids == old_ids) & (np.abs(scores - plan.scale.threshold) <= band) & (scores < 1.0)
    flags[on_edge] = [old_flags[i] is True for i in np.flatnonzero(on_edge)]
    flags &= ~cleared
    old_scores = np.fromiter((_float(p.get(keys["outlier_score"])) for p in page.payloads), np.float64, n)
    flips = np.fromiter((old is not bool(f) for old, f in zip(old_flags, flags, strict=True)), bool, n)
    # a score is kept to the tolerance where it matters (near the outlier threshold and above it:
    # the flag and the outlier ranking); deep inside a cluster, to five times the tolerance
    near_top = np.maximum(scores, old_scores) >= plan.scale.threshold - TOP_BAND
    allowed = np.where(near_top, plan.tolerance, 5 * plan.tolerance)
    changed = (old_ids != new_ids) | flips | ~(np.abs(old_scores - scores) <= allowed) | ~by_run
    # a flagged ticket whose rank is not its stored score (missing, or left by an older writer) is
    # rewritten: /outliers orders by the rank
    old_ranks = np.fromiter((_float(p.get(keys[RANK])) for p in page.payloads), np.float64, n)
    changed |= flags & ~(old_ranks == old_scores)
    stored = stored_scores(scores, plan.scale.threshold, plan.tolerance)
    # A run's label stores no assigned_by (None clears a guess's "ingest"; see constellate.labels).
    # A first run writes both slots (no reader uses either yet), and names no run: nothing needs to
    # find its labels by run (no copy between slots follows; after a failed first run the next is a
    # first run again and rewrites every label), and one value every ticket shares is the costliest
    # entry a keyword index keeps. It clears only what an earlier label left (below).
    slots = SLOTS if plan.first_run else (target,)
    run = {} if plan.first_run else {"label_run": plan.run_id, "assigned_by": None}
    groups: dict[tuple[Any, ...], tuple[dict[str, Any], list[str]]] = {}
    rows = np.flatnonzero(changed)
    for i, cluster_id, flag, score in zip(
        rows.tolist(), new_ids[rows].tolist(), flags[rows].tolist(), stored[rows].tolist(), strict=True
    ):
        # a first run clears what an earlier label left: a guess mark from a re-ingest, or a failed
        # first run's id from before first runs stopped writing one
        clear = (
            tuple(k for k in ("assigned_by", "label_run") if page.payloads[i].get(keys[k]))
            if plan.first_run
            else ()
        )
        key = (cluster_id, flag, score, clear)
        group = groups.get(key)
        if group is None:
            payload = built.get(key)
            if payload is None:
                values = {"cluster_id": cluster_id, "is_outlier": flag, "outlier_score": score, **run}
                values.update(dict.fromkeys(clear))
                payload = built[key] = {k: v for slot in slots for k, v in slot_payload(slot, values).items()}
            group = groups[key] = (payload, [])
        group[1].append(page.ids[i])
    return list(groups.values())


def stored_scores(scores: np.ndarray, threshold: float, tolerance: float) -> np.ndarray:
    """Scores as stored: to 0.001 above the outlier threshold (the ranking of ``/outliers``), to half
    the tolerance a run compares them with just below it, to the tolerance deeper inside a cluster
    (never coarser than half the tolerance anywhere, so the next run on the same data rewrites none
    of them), so that the labels a run writes share payloads and group into few engine operations.
    A tolerance of 0 stores the scores as computed."""
    step = np.where(
        scores > threshold,
        min(0.001, tolerance / 2),
        np.where(scores >= threshold - TOP_BAND, tolerance / 2, tolerance),
    )
    exact = step <= 0
    rounded = np.where(exact, scores, np.round(scores / np.where(exact, 1.0, step)) * step)
    return np.round(rounded, 10)


def assign(
    vectors: np.ndarray, pids: Sequence[str], old_ids: np.ndarray, by_run: np.ndarray, plan: Plan
) -> np.ndarray:
    """Each ticket's cluster row.

    Full plan: the nearest regular centroid; a label a run wrote stays (if its cluster continues)
    unless another centroid is ``plan.stay_margin`` more similar; then human splits, then the
    sample's fit labels. Incremental plan: a label a run wrote stays unless a born cluster is
    ``stay_margin`` more similar (the live centroids did not move); other tickets take the nearest
    regular centroid; then human splits.
    """
    row = plan.row_of()
    regular = np.flatnonzero(plan.regular)
    sims = vectors @ plan.centroids[regular].T
    best = np.argmax(sims, axis=1)
    rows = regular[best]
    current = np.array([row.get(int(c), -1) for c in old_ids], dtype=np.int64)
    if plan.mode == FULL:
        if plan.stay_margin > 0:  # a run's label stays unless another cluster is clearly nearer
            regular_row = np.full(len(plan.cluster_ids), -1, dtype=np.int64)
            regular_row[regular] = np.arange(len(regular))
            column = np.where(current >= 0, regular_row[np.maximum(current, 0)], -1)
            stay = by_run & (column >= 0)
            stay[stay] &= sims[stay, column[stay]] >= sims[stay, best[stay]] - plan.stay_margin
            rows[stay] = current[stay]
    else:
        keep = np.flatnonzero(by_run & (current >= 0))
        rows[keep] = current[keep]
        if plan.born and len(keep):
            born = np.asarray(plan.born, dtype=np.int64)
            to_born = vectors[keep] @ plan.centroids[born].T
            j = np.argmax(to_born, axis=1)
            own = np.einsum("ij,ij->i", vectors[keep], plan.centroids[current[keep]])
            gain = to_born[np.arange(len(keep)), j] - own
            moved = gain >= max(plan.stay_margin, 1e-6)
            rows[keep[moved]] = born[j[moved]]
    for i, pid in enumerate(pids):  # bounded maps: human splits, then sample tickets' fit labels
        fixed = plan.overrides.get(pid)
        stayed = plan.stay_margin > 0 and by_run[i] and rows[i] == current[i]
        if fixed is None and plan.mode == FULL and not stayed:
            fixed = plan.sample_labels.get(pid)
        if fixed is not None and fixed in row:
            rows[i] = row[fixed]
    return rows


def copy_labels(
    store: VectorStore,
    run_id: str,
    source: str,
    dest: str | None = None,
    lease: Lease | None = None,
    page_size: int = 2048,
) -> int:
    """Copy the labels run ``run_id`` wrote in slot ``source`` into the other slot where that slot
    does not hold them yet (after a switch, so that the next run's target slot already holds what
    readers see; idempotent, so a run can finish a copy its predecessor did not). Returns how many."""
    dest = dest or other_slot(source)
    flt = Filter(
        must=(Match(slot_field(source, "label_run"), run_id),),
        must_not=(
            Match(slot_field(dest, "label_run"), run_id),
            Match(slot_field(source, "assigned_by"), INGEST),
        ),
    )
    fields = [slot_field(source, n) for n in LABEL_NAMES]
    copied = 0
    offset: str | None = None
    with GroupedWriter(store, lease or NoLease(run_id), pending=PAGES_HELD * page_size) as writer:
        while True:
            records, offset = store.scroll_tickets(flt, limit=page_size, offset=offset, fields=fields)
            for r in records:
                writer.add(
                    r.id, {slot_field(dest, n): r.payload.get(slot_field(source, n)) for n in LABEL_NAMES}
                )
            copied += len(records)
            if offset is None or not records:
                break
        writer.flush()
    return copied


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else -1


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan
