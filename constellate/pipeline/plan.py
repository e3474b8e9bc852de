"""Match-ids stage: the fit's clusters matched to the live ones, human edits replayed -> a :class:`Plan`.

The plan is everything the labelling pass needs to label any ticket without seeing the others: the
final clusters' stable ids and centroids, which of them take tickets by nearest centroid, the
tickets humans put somewhere by hand, the sample's own fit labels and the outlier scale. It is
small (K centroids and two bounded maps), so it can travel to other workers as bytes.

A *full* plan (a rebase) adopts the fit: new centroids, a new outlier scale, every ticket
relabelled. An *incremental* plan keeps the live catalogue and scale as they are and adds only the
fit's clusters that are new (matched to no live cluster, mostly tickets no run has labelled yet);
its pass reads only the tickets that need a label (new, guessed at ingest, written by a failed run)
and the labelled ones within reach of a born cluster, so its cost follows what changed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from constellate.clustering import Fit, OutlierScale
from constellate.edits import EditEffect, replay_edits
from constellate.embedding import normalize
from constellate.identity import MIN_CENTROID_SIM, Lineage, match_clusters
from constellate.pipeline.sample import Sample
from constellate.store.base import Record, VectorStore

FULL, INCREMENTAL = "full", "incremental"
NEW_SHARE = 0.5  # an unmatched cluster is new (born in an incremental run) when this share of its
# sample members carry no run's label yet (stored or guessed at ingest since the last run)


@dataclass
class Plan:
    """One run's labelling, decided before any ticket is written."""

    run_id: str
    target: str  # the label slot this run writes
    first_run: bool  # no run has switched yet: readers use no slot, so both slots are written at once
    claimed_version: int  # the state version this run's claim wrote (the switch is conditional on it)
    cluster_ids: list[int]  # final stable ids, index = cluster row
    centroids: np.ndarray  # (K, d) unit-norm
    regular: (
        np.ndarray
    )  # (K,) bool: takes tickets by nearest centroid (False: only tickets put there by hand)
    overrides: dict[str, int]  # point id -> stable id, from human splits
    sample_labels: dict[str, int]  # sample point id -> stable id (its fit label, after edits)
    scale: OutlierScale
    tolerance: float
    stay_margin: float = (
        0.0  # a labelled ticket stays in its continued cluster unless another is this much closer
    )
    lineage_events: list[dict[str, Any]] = field(default_factory=list)
    parents: list[list[int]] = field(default_factory=list)
    next_id: int = 0
    edit_ids: list[str] = field(default_factory=list)  # the edits in its result (replayed, or kept)
    failed_runs: list[str] = field(default_factory=list)  # recent runs that never switched
    record: dict[str, Any] = field(default_factory=dict)  # the run record so far
    catalogue: list[dict[str, Any]] = field(default_factory=list)  # entries without sizes
    mode: str = FULL
    live_slot: str | None = None  # the slot readers use while the run works
    born: list[int] = field(default_factory=list)  # incremental: rows of the clusters this run adds
    reach: float = 1.0  # incremental: a labelled ticket can move to a born cluster only this similar to it
    topic_ids: list[int] = field(default_factory=list)  # the topics (stable ids), index = topic row
    topic_of: list[int] = field(default_factory=list)  # each cluster row's topic id
    topic_centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    topic_parents: list[list[int]] = field(default_factory=list)
    had_topics: bool = False  # the live catalogue had topics (else every topic is new, not "born")
    topic_catalogue: list[dict[str, Any]] = field(default_factory=list)  # topic entries without sizes

    def row_of(self) -> dict[int, int]:
        """Cluster row by stable id."""
        return {cid: i for i, cid in enumerate(self.cluster_ids)}

    def to_bytes(self) -> bytes:
        """Serialise for the workers of a fanned-out run (no pickle: arrays and JSON)."""
        meta = asdict(self)
        for key in ("centroids", "regular", "scale", "topic_centroids"):
            meta.pop(key)
        meta["scale"] = self.scale.to_dict()
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            centroids=self.centroids.astype(np.float32),
            regular=self.regular.astype(bool),
            topic_centroids=self.topic_centroids.astype(np.float32),
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Plan:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            centroids, regular = arrays["centroids"], arrays["regular"]
            meta["topic_centroids"] = arrays["topic_centroids"]
        meta["scale"] = OutlierScale.from_dict(meta["scale"])
        meta["overrides"] = {k: int(v) for k, v in meta["overrides"].items()}
        meta["sample_labels"] = {k: int(v) for k, v in meta["sample_labels"].items()}
        return cls(centroids=centroids, regular=regular, **meta)


@dataclass
class Matched:
    """Identity matching and the replayed edits, before centroids are final."""

    lineage: Lineage
    effect: EditEffect
    final: np.ndarray  # stable id per sample row after edits


def match(
    sample: Sample,
    fit: Fit,
    prev_centroids: dict[int, np.ndarray],
    edits: list[dict[str, Any]],
    first_new_id: int,
) -> Matched:
    """Match the fit's clusters to the live ones on the sample and replay the edits on it."""
    lineage = match_clusters(fit.labels, fit.centroids, sample.prev_labels, prev_centroids, first_new_id)
    stable = np.asarray(lineage.ids, dtype=np.int64)[fit.labels]
    effect = replay_edits(edits, lineage, set(lineage.ids))
    final = np.array(
        [
            effect.resolve(effect.overrides.get(pid, int(s)))
            for pid, s in zip(sample.ids, stable, strict=True)
        ],
        dtype=np.int64,
    )
    return Matched(lineage, effect, final)


def build_plan(
    store: VectorStore,
    sample: Sample,
    fit: Fit,
    matched: Matched,
    settings_tolerance: float,
    outlier_share: float,
    stay_margin: float = 0.0,
    **fields: Any,
) -> Plan:
    """Final clusters (largest first), their centroids and the outlier scale fitted on the sample.

    A final cluster is *regular* when a fitted cluster folds into it: tickets join it by nearest
    centroid. A cluster that only holds tickets a human split off keeps just those (its centroid is
    theirs, read from the store: bounded by the edits).
    """
    effect, final = matched.effect, matched.final
    regular_ids = {effect.resolve(int(c)) for c in matched.lineage.ids}
    by_hand = {effect.resolve(c) for c in effect.overrides.values()}
    ids, counts = np.unique(final, return_counts=True)
    sizes = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    all_ids = sorted(regular_ids | by_hand | set(sizes), key=lambda c: (-sizes.get(c, 0), c))
    dim = sample.vectors.shape[1]
    sums = {cid: np.zeros(dim, dtype=np.float64) for cid in all_ids}
    for cid in sizes:
        sums[cid] += sample.vectors[final == cid].sum(axis=0)
    in_sample = set(sample.ids)
    outside = [
        pid
        for pid, c in effect.overrides.items()
        if pid not in in_sample and effect.resolve(c) not in regular_ids
    ]
    for start in range(0, len(outside), 1024):
        for record in store.get_points(outside[start : start + 1024], with_vector=True, fields=[]):
            if record.vector is not None:
                sums[effect.resolve(effect.overrides[record.id])] += record.vector
    fitted = {int(c): fit.centroids[i] for i, c in enumerate(matched.lineage.ids)}
    for cid in all_ids:  # a cluster left with no members in the sample: its fitted centroid(s)
        if not np.any(sums[cid]):
            sums[cid] = sum((v for c, v in fitted.items() if effect.resolve(c) == cid), np.zeros(dim))
    centroids = normalize(np.stack([sums[c] for c in all_ids]).astype(np.float32))
    row = {cid: i for i, cid in enumerate(all_ids)}
    similarity = np.einsum("ij,ij->i", sample.vectors, centroids[[row[c] for c in final]])
    scale = OutlierScale.fit(1.0 - similarity, outlier_share)
    lineage_parents = dict(zip(matched.lineage.ids, matched.lineage.parents, strict=True))
    parents = [sorted({*lineage_parents.get(c, []), *effect.parents.get(c, [])}) for c in all_ids]
    present = set(all_ids)
    events = [
        e
        for e in [*matched.lineage.events, *effect.events]
        if e.get("by") or e["event"] in ("died", "merged") or e["cluster_id"] in present
    ]
    return Plan(
        cluster_ids=all_ids,
        centroids=centroids,
        regular=np.array([c in regular_ids for c in all_ids], dtype=bool),
        overrides={pid: effect.resolve(c) for pid, c in effect.overrides.items()},
        sample_labels={pid: int(c) for pid, c in zip(sample.ids, final, strict=True)},
        scale=scale,
        tolerance=settings_tolerance,
        stay_margin=stay_margin,
        lineage_events=events,
        parents=parents,
        next_id=max(matched.lineage.next_id, effect.next_id),
        **fields,
    )


def build_incremental_plan(
    sample: Sample,
    fit: Fit,
    lineage: Lineage,
    previous: list[Record],
    scale: OutlierScale,
    edits: list[dict[str, Any]],
    tolerance: float,
    stay_margin: float,
    recent_runs: Sequence[str] = (),
    **fields: Any,
) -> Plan:
    """The live clusters kept (ids, centroids, regular flags, outlier scale), plus the fit's new ones.

    A fit cluster is added when identity matching continued no live cluster with it and at least
    ``NEW_SHARE`` of its sample members are new since the last full run: no run's label
    (``sample.prev_labels`` = -1), or a label written by one of the incremental ``recent_runs``
    since (so a topic that grows over several runs is born once it is big enough), unless
    its centroid is as close to a live one as a continued cluster's may be. Splits,
    merges and drift of live clusters wait for the next full run. Human merges and renames are
    already in the live catalogue; the split edits' tickets are carried as overrides.
    """
    live_ids = [int(r.payload["cluster_id"]) for r in previous]
    live = set(live_ids)
    ids, vectors = list(live_ids), [np.asarray(r.vector, dtype=np.float32) for r in previous]
    regular = [bool(r.payload.get("regular", True)) for r in previous]
    parents = [list(r.payload.get("parents", [])) for r in previous]
    recent = set(recent_runs)
    unlabelled = sample.prev_labels < 0
    if recent and sample.label_runs is not None:
        unlabelled |= np.array([r in recent for r in sample.label_runs], dtype=bool)
    live_centroids = np.stack(vectors) if vectors else np.zeros((0, fit.centroids.shape[1]), np.float32)
    born, events = [], []
    for i, cid in enumerate(lineage.ids):
        members = fit.labels == i
        if cid in live or not members.any() or unlabelled[members].mean() < NEW_SHARE:
            continue
        if len(live_centroids) and float((live_centroids @ fit.centroids[i]).max()) >= MIN_CENTROID_SIM:
            continue  # new tickets of a live cluster that the matching paired elsewhere
        born.append(len(ids))
        ids.append(int(cid))
        vectors.append(fit.centroids[i])
        regular.append(True)
        parents.append([])
        events.append({"event": "born", "cluster_id": int(cid)})
    effect = replay_edits(edits, Lineage(ids, [[] for _ in ids]), set(ids))
    overrides = {
        pid: effect.resolve(c) for pid, c in effect.overrides.items() if effect.resolve(c) in set(ids)
    }
    centroids = (
        normalize(np.stack(vectors)) if vectors else np.zeros((0, sample.vectors.shape[1]), np.float32)
    )
    band = min(tolerance, (1.0 - scale.threshold) / 2)
    # a labelled ticket that is no outlier is at least this similar to its own centroid ...
    floor = 1.0 - float(np.interp(min(1.0, scale.threshold + band), *_ranks(scale)))
    return Plan(
        cluster_ids=ids,
        centroids=centroids.astype(np.float32),
        regular=np.array(regular, dtype=bool),
        overrides=overrides,
        sample_labels={},
        scale=scale,
        tolerance=tolerance,
        stay_margin=stay_margin,
        lineage_events=events,
        parents=parents,
        next_id=max(lineage.next_id, effect.next_id, *(c + 1 for c in ids)),
        mode=INCREMENTAL,
        born=born,
        reach=floor + stay_margin - 1e-3,  # ... and moves only to a centroid clearly more similar
        **fields,
    )


def _ranks(scale: OutlierScale) -> tuple[np.ndarray, np.ndarray]:
    """(ranks, distances) of the scale's quantiles, to read a score back as a distance."""
    q = np.asarray(scale.quantiles)
    return np.linspace(0.0, 1.0, len(q)), q
