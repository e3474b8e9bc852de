"""Assign + write stage: one pass over (a range of) the store, page by page, writing only what changed.

For each page: nearest final centroid (sample tickets keep their fit label, tickets a human split
off keep their cluster), the outlier score on the run's scale, and a comparison with what the
run's target slot already holds. A ticket is written only if its cluster differs, its outlier flag
flips, its score moved more than the tolerance, or no run has labelled it in that slot. The pass
holds one page, the plan and a few per-cluster counters — never the whole matrix.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from constellate.labels import NOT_OUTLIER, RECLUSTER, SLOTS, other_slot, slot_field, slot_payload
from constellate.pipeline.plan import Plan
from constellate.run_lock import Lease
from constellate.store.base import VectorStore

OUTLIER_RESERVOIR = 5000  # outlier point ids kept (uniformly) for the outlier-group alert
TOP_BAND = 0.15  # scores this close below the outlier threshold (or above it) are kept exact


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
    """What one pass (or part of one) counted and wrote."""

    n: int = 0
    written: int = 0
    outliers: int = 0
    sizes: dict[int, int] = field(default_factory=dict)
    outlier_ids: list[str] = field(default_factory=list)
    seen_outliers: int = 0  # outliers offered to the reservoir
    day: dict[int, int] = field(default_factory=dict)  # tickets created in the last 24 h, per cluster
    week: dict[int, int] = field(default_factory=dict)  # ... and in the last 7 days

    def merge(self, other: PartResult, seed: int = 0) -> PartResult:
        """Combine two parts' counts (reservoirs are joined and thinned back to the cap)."""
        sizes, day, week = (
            _add(self.sizes, other.sizes),
            _add(self.day, other.day),
            _add(self.week, other.week),
        )
        ids = self.outlier_ids + other.outlier_ids
        if len(ids) > OUTLIER_RESERVOIR:
            ids = sorted(np.random.default_rng(seed).choice(ids, OUTLIER_RESERVOIR, replace=False).tolist())
        return PartResult(
            self.n + other.n,
            self.written + other.written,
            self.outliers + other.outliers,
            sizes,
            ids,
            self.seen_outliers + other.seen_outliers,
            day,
            week,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "written": self.written,
            "outliers": self.outliers,
            "sizes": {str(k): v for k, v in self.sizes.items()},
            "outlier_ids": self.outlier_ids,
            "seen_outliers": self.seen_outliers,
            "day": {str(k): v for k, v in self.day.items()},
            "week": {str(k): v for k, v in self.week.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartResult:
        return cls(
            int(data["n"]),
            int(data["written"]),
            int(data["outliers"]),
            {int(k): int(v) for k, v in data["sizes"].items()},
            list(data["outlier_ids"]),
            int(data.get("seen_outliers", 0)),
            {int(k): int(v) for k, v in data.get("day", {}).items()},
            {int(k): int(v) for k, v in data.get("week", {}).items()},
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
    """Label every ticket with ``start <= point id < stop`` into the plan's target slot."""
    target = plan.target
    keys = {
        name: slot_field(target, name)
        for name in ("cluster_id", "is_outlier", "outlier_score", "assigned_by", "label_run")
    }
    failed = set(plan.failed_runs)
    fields = [*keys.values(), NOT_OUTLIER, "created_at"]
    now = datetime.now(UTC)
    since_day = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    since_week = (now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    regular = np.flatnonzero(plan.regular)
    regular_centroids = plan.centroids[regular]
    ids = np.asarray(plan.cluster_ids, dtype=np.int64)
    row = plan.row_of()
    counts = np.zeros(len(ids), dtype=np.int64)
    day = np.zeros(len(ids), dtype=np.int64)
    week = np.zeros(len(ids), dtype=np.int64)
    result = PartResult()
    rng = np.random.default_rng(seed)
    slots = SLOTS if plan.first_run else (target,)
    for page in store.iter_vectors(page_size=page_size, fields=fields, start=start, stop=stop):
        n = len(page.ids)
        old_ids = np.fromiter(
            (_int(p.get(keys["cluster_id"])) for p in page.payloads), dtype=np.int64, count=n
        )
        # a label a failed run wrote is rewritten even if equal, so it names a run that switched
        by_run = np.fromiter(
            (
                p.get(keys["assigned_by"]) == RECLUSTER and p.get(keys["label_run"]) not in failed
                for p in page.payloads
            ),
            dtype=bool,
            count=n,
        )
        rows = _assign(page.vectors, page.ids, old_ids, by_run, plan, regular, regular_centroids, row)
        similarity = np.einsum("ij,ij->i", page.vectors, plan.centroids[rows])
        scores = np.round(plan.scale.score(1.0 - similarity), 4)
        cleared = np.fromiter((p.get(NOT_OUTLIER) == "no" for p in page.payloads), dtype=bool, count=n)
        old_flags = [p.get(keys["is_outlier"]) for p in page.payloads]
        new_ids = ids[rows]
        flags = plan.scale.is_outlier(scores)
        # a flag a run set flips only once the score is clearly past the threshold (the threshold
        # itself moves a little with every sample): no writes for tickets sitting on it
        band = min(plan.tolerance, (1.0 - plan.scale.threshold) / 2)  # never wider than half the share
        on_edge = (
            by_run & (new_ids == old_ids) & (np.abs(scores - plan.scale.threshold) <= band) & (scores < 1.0)
        )
        flags[on_edge] = [old_flags[i] is True for i in np.flatnonzero(on_edge)]
        flags &= ~cleared
        old_scores = np.fromiter(
            (_float(p.get(keys["outlier_score"])) for p in page.payloads), dtype=np.float64, count=n
        )
        flips = np.fromiter(
            (old is not bool(f) for old, f in zip(old_flags, flags, strict=True)), dtype=bool, count=n
        )
        # a score is kept to the tolerance where it matters (near the outlier threshold and above it:
        # the flag and the outlier ranking); deep inside a cluster, to five times the tolerance
        near_top = np.maximum(scores, old_scores) >= plan.scale.threshold - TOP_BAND
        allowed = np.where(near_top, plan.tolerance, 5 * plan.tolerance)
        changed = (old_ids != new_ids) | flips | ~(np.abs(old_scores - scores) <= allowed) | ~by_run
        writes = [
            (
                page.ids[i],
                {
                    k: v
                    for slot in slots
                    for k, v in slot_payload(
                        slot,
                        {
                            "cluster_id": int(new_ids[i]),
                            "is_outlier": bool(flags[i]),
                            "outlier_score": float(scores[i]),
                            "assigned_by": RECLUSTER,
                            "label_run": plan.run_id,
                        },
                    ).items()
                },
            )
            for i in np.flatnonzero(changed)
        ]
        if writes:
            lease.check()  # never write for a run that no longer owns the lock
            store.set_payloads(writes)
        counts += np.bincount(rows, minlength=len(ids))
        created = [str(p.get("created_at") or "") for p in page.payloads]  # RFC 3339 UTC: compare as text
        week += np.bincount(rows[[c >= since_week for c in created]], minlength=len(ids))
        day += np.bincount(rows[[c >= since_day for c in created]], minlength=len(ids))
        result.n += n
        result.written += len(writes)
        result.outliers += int(flags.sum())
        for i in np.flatnonzero(flags):  # reservoir sampling (Algorithm R) of outlier point ids
            result.seen_outliers += 1
            if len(result.outlier_ids) < OUTLIER_RESERVOIR:
                result.outlier_ids.append(page.ids[i])
            else:
                j = int(rng.integers(result.seen_outliers))
                if j < OUTLIER_RESERVOIR:
                    result.outlier_ids[j] = page.ids[i]
    result.sizes = {int(cid): int(c) for cid, c in zip(ids, counts, strict=True) if c}
    result.day = {int(cid): int(c) for cid, c in zip(ids, day, strict=True) if c}
    result.week = {int(cid): int(c) for cid, c in zip(ids, week, strict=True) if c}
    return result


def _assign(
    vectors: np.ndarray,
    pids: list[str],
    old_ids: np.ndarray,
    by_run: np.ndarray,
    plan: Plan,
    regular: np.ndarray,
    regular_centroids: np.ndarray,
    row: dict[int, int],
) -> np.ndarray:
    """Each ticket's cluster row: the nearest regular centroid, with hysteresis for labels a run
    wrote (``plan.stay_margin``), then human splits, then the sample's fit labels."""
    regular_row = np.full(len(plan.cluster_ids), -1, dtype=np.int64)  # row -> column among regular
    regular_row[regular] = np.arange(len(regular))
    sims = vectors @ regular_centroids.T
    best = np.argmax(sims, axis=1)
    rows = regular[best]
    if plan.stay_margin > 0:  # a run's label stays unless another cluster is clearly nearer
        current = np.array([row.get(int(c), -1) for c in old_ids], dtype=np.int64)
        column = np.where(current >= 0, regular_row[np.maximum(current, 0)], -1)
        stay = by_run & (column >= 0)
        stay[stay] &= sims[stay, column[stay]] >= sims[stay, best[stay]] - plan.stay_margin
        rows[stay] = current[stay]
    for i, pid in enumerate(pids):  # bounded maps: human splits, then sample tickets' fit labels
        fixed = plan.overrides.get(pid)
        if fixed is None and not (plan.stay_margin > 0 and by_run[i] and rows[i] == row.get(int(old_ids[i]))):
            fixed = plan.sample_labels.get(pid)
        if fixed is not None:
            rows[i] = row[fixed]
    return rows


def copy_to_other_slot(store: VectorStore, plan: Plan, page_size: int = 2048) -> int:
    """After the switch: copy the labels this run changed into the other slot, so the next run's
    target already holds them and its diff is against the labelling readers see."""
    from constellate.store.base import Filter, Match

    source, dest = plan.target, other_slot(plan.target)
    names = ("cluster_id", "is_outlier", "outlier_score", "assigned_by", "label_run")
    flt = Filter(
        must=(
            Match(slot_field(source, "label_run"), plan.run_id),
            Match(slot_field(source, "assigned_by"), RECLUSTER),
        )
    )
    copied = 0
    offset: str | None = None
    while True:
        records, offset = store.scroll_tickets(
            flt, limit=page_size, offset=offset, fields=[slot_field(source, n) for n in names]
        )
        store.set_payloads(
            [
                (r.id, {slot_field(dest, n): r.payload.get(slot_field(source, n)) for n in names})
                for r in records
            ]
        )
        copied += len(records)
        if offset is None or not records:
            return copied


def _add(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    out = dict(a)
    for key, count in b.items():
        out[key] = out.get(key, 0) + count
    return out


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else -1


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan
