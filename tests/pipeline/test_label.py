"""The label pass's copy between slots carries every stored label field, the outlier rank too."""

from __future__ import annotations

import numpy as np

from constellate.labels import slot_payload
from constellate.pipeline.label import copy_labels
from constellate.tickets import Ticket

DIM = 8


def _label(slot: str, flagged: bool, score: float, run: str) -> dict:
    values = {
        "cluster_id": 0,
        "is_outlier": flagged,
        "outlier_score": score,
        "label_run": run,
        "assigned_by": None,
    }
    return slot_payload(slot, values)


def test_copy_labels_carries_the_rank(store) -> None:
    """/outliers orders by the rank: a copy that left it behind would hide a flagged ticket there."""
    store.ensure_collections(DIM)
    tickets = [Ticket(id=f"t{i}", text="x") for i in range(2)]
    a, b = store.upsert_tickets(tickets, np.random.default_rng(0).normal(size=(2, DIM)).astype(np.float32))
    store.set_payloads(
        [
            (a, _label("a", True, 0.97, "r2")),
            (b, _label("a", False, 0.1, "r2")),
            (b, _label("b", True, 0.95, "r1")),  # flagged in b by an earlier run: cleared by the copy
        ]
    )
    assert copy_labels(store, "r2", "a") == 2
    assert store.get_ticket("t0").payload.get("b_outlier_rank") == 0.97
    assert store.get_ticket("t1").payload.get("b_outlier_rank") is None
    assert store.get_ticket("t1").payload.get("b_is_outlier") is False
