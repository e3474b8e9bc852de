"""Scan/fit stage, part 1: read the fit sample.

The sample is the first ``size`` tickets in point-id order from a seeded start. Point ids are UUIDv5
hashes of ticket ids, so this is a uniform random sample — and a *consistent* one: a ticket in it
stays in it until enough tickets with nearby ids arrive, so adding 10 % new tickets replaces about
10 % of the sample and leaves the rest (and the clusters fitted on it) as they were.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

from constellate.labels import NOT_OUTLIER, by_a_run, slot_field
from constellate.store.base import VectorStore

_NAMESPACE = uuid.UUID("3c5a9d2e-7f41-5b8c-a06d-1e2f3a4b5c6d")


@dataclass
class Sample:
    """The fit sample: point ids, vectors, texts, live run labels (-1 if none) and human overrides."""

    ids: list[str]
    vectors: np.ndarray
    ticket_ids: list[str]
    texts: list[str]
    prev_labels: np.ndarray
    not_outlier: np.ndarray
    label_runs: list[str | None] | None = None  # the run that wrote each live label (None if none)

    def __len__(self) -> int:
        return len(self.ids)


def sample_start(seed: int) -> str:
    """Where in the id space the sample begins (a seeded point id)."""
    return str(uuid.uuid5(_NAMESPACE, f"sample:{seed}"))


def read_sample(store: VectorStore, size: int, live_slot: str | None, seed: int, page_size: int) -> Sample:
    """Read up to ``size`` tickets from the seeded start, wrapping around the id space once.

    Only labels a recluster wrote count as previous membership (-1 otherwise): a label given at
    ingest is a nearest-centroid guess, and counting it would let a new topic's tickets, all guessed
    into one old cluster, take over that cluster's id.
    """
    key = slot_field(live_slot, "cluster_id") if live_slot else None
    by = slot_field(live_slot, "assigned_by") if live_slot else None
    run = slot_field(live_slot, "label_run") if live_slot else None
    fields = ["ticket_id", "text", NOT_OUTLIER, *([key, by, run] if key and by and run else [])]
    start = sample_start(seed)
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    payloads: list[dict] = []
    for lo, hi in ((start, None), (None, start)):
        for page in store.iter_vectors(page_size=min(page_size, size), fields=fields, start=lo, stop=hi):
            room = size - len(ids)
            ids.extend(page.ids[:room])
            blocks.append(page.vectors[:room])
            payloads.extend(page.payloads[:room])
            if len(ids) >= size:
                break
        if len(ids) >= size:
            break
    prev, runs = [], []
    for p in payloads:
        known = live_slot is not None and by_a_run(p, live_slot)
        prev.append(int(p[key]) if known and key else -1)
        runs.append(str(p.get(run)) if known and run and p.get(run) else None)
    return Sample(
        ids=ids,
        vectors=np.concatenate(blocks) if blocks else np.zeros((0, 0), dtype=np.float32),
        ticket_ids=[str(p.get("ticket_id", "")) for p in payloads],
        texts=[str(p.get("text", "")) for p in payloads],
        prev_labels=np.asarray(prev, dtype=np.int64),
        not_outlier=np.asarray([p.get(NOT_OUTLIER) == "no" for p in payloads], dtype=bool),
        label_runs=runs,
    )
