"""The grouped label writer: one operation per payload, backpressure in ids, the lease checked."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from constellate.exceptions import LeaseLost
from constellate.pipeline import writer as writer_module
from constellate.pipeline.label import stored_scores
from constellate.pipeline.writer import GroupedWriter
from constellate.run_lock import NoLease


class RecordingStore:
    """Records each ``set_payload_ids`` call; ``gate`` (if set) holds every write until released."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.gate = gate

    def set_payload_ids(self, ids: list[str], payload: dict[str, Any]) -> None:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.calls.append((list(ids), dict(payload)))


class CountedLease(NoLease):
    """Fails its check after ``allowed`` checks."""

    def __init__(self, allowed: int) -> None:
        super().__init__("r1")
        self.allowed = allowed

    def check(self) -> None:
        if self.allowed <= 0:
            raise LeaseLost("lost")
        self.allowed -= 1


def test_one_operation_per_payload_and_every_id_written() -> None:
    store = RecordingStore()
    with GroupedWriter(store, NoLease("r1"), group=3) as w:  # type: ignore[arg-type]
        for i in range(7):
            w.add(f"p{i}", {"cluster_id": i % 2})
    written = {pid: payload["cluster_id"] for ids, payload in store.calls for pid in ids}
    assert written == {f"p{i}": i % 2 for i in range(7)}
    assert all(len(ids) <= 3 for ids, _ in store.calls)
    assert len(store.calls) == 3  # 4 ids of cluster 0 in groups of 3 (2 operations), 3 of cluster 1 (1)
    assert w.written == 7


def test_small_groups_do_not_stall_the_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backpressure counts ids, not operations: many one-id groups are handed over without waiting
    for the engine until IN_FLIGHT ids are pending."""
    monkeypatch.setattr(writer_module, "IN_FLIGHT", 50)
    gate = threading.Event()
    store = RecordingStore(gate)
    w = GroupedWriter(store, NoLease("r1"), group=1)  # type: ignore[arg-type]
    added = threading.Event()

    def add_many() -> None:
        for i in range(40):  # 40 operations of one id each, none written yet (the gate is shut)
            w.add(f"p{i}", {"cluster_id": i})
        added.set()

    threading.Thread(target=add_many, daemon=True).start()
    assert added.wait(5), "the pass waited on the engine with fewer than IN_FLIGHT ids pending"
    assert store.calls == []
    blocked = threading.Event()

    def add_past_the_bound() -> None:
        for i in range(40, 60):
            w.add(f"p{i}", {"cluster_id": i})
        blocked.set()

    threading.Thread(target=add_past_the_bound, daemon=True).start()
    assert not blocked.wait(0.5), "more than IN_FLIGHT ids were handed to the engine"
    gate.set()
    assert blocked.wait(5)
    w.flush()
    w.__exit__(None, None, None)
    assert sorted(pid for ids, _ in store.calls for pid in ids) == sorted(f"p{i}" for i in range(60))


def test_a_lost_lease_stops_the_writes() -> None:
    store = RecordingStore()
    w = GroupedWriter(store, CountedLease(allowed=2), group=1)  # type: ignore[arg-type]
    w.add("p0", {"cluster_id": 0})
    w.add("p1", {"cluster_id": 1})
    with pytest.raises(LeaseLost):
        w.add("p2", {"cluster_id": 2})
    w.__exit__(LeaseLost, None, None)  # queued writes are cancelled; p2 was never handed over
    written = [pid for ids, _ in store.calls for pid in ids]
    assert "p2" not in written and set(written) <= {"p0", "p1"}


def test_stored_scores_stay_within_half_the_tolerance() -> None:
    scores = np.random.default_rng(0).random(10_000)
    threshold, tolerance = 0.6, 0.02
    stored = stored_scores(scores, threshold, tolerance)
    near_top = scores >= threshold - 0.15
    assert np.all(np.abs(stored - scores)[near_top] <= tolerance / 4 + 1e-9)
    assert np.all(np.abs(stored - scores) <= tolerance / 2 + 1e-9)  # the next run rewrites none
    assert len(np.unique(stored[scores > threshold])) <= 0.4 / (tolerance / 2) + 1  # few groups
    assert np.allclose(stored_scores(scores, threshold, 0.0), np.round(scores, 4))  # 0: exact
