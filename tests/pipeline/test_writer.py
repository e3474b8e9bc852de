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
        self.threads: list[str] = []
        self.gate = gate

    def set_payload_ids(self, ids: list[str], payload: dict[str, Any]) -> None:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.calls.append((list(ids), dict(payload)))
        self.threads.append(threading.current_thread().name)


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


def test_many_ids_at_once_are_split_into_operations_of_the_group_size() -> None:
    store = RecordingStore()
    store.concurrent_writes = False  # type: ignore[attr-defined]
    w = GroupedWriter(store, NoLease("r1"), group=3)  # type: ignore[arg-type]
    w.add("p0", {"cluster_id": 0})
    w.add_many([f"p{i}" for i in range(1, 8)], {"cluster_id": 0})  # 8 ids now: 3 + 3 + 2
    w.add_many(["q0", "q1"], {"cluster_id": 1})
    assert [ids for ids, _ in store.calls] == [["p0", "p1", "p2"], ["p3", "p4", "p5"], ["p6", "p7"]]
    w.flush()
    assert store.calls[-1] == (["q0", "q1"], {"cluster_id": 1}) and w.written == 10


def test_a_store_whose_writes_hold_the_gil_is_written_by_the_pass_itself(tmp_path: Any) -> None:
    """qdrant-edge takes the GIL back within each write, so a writer thread beside the pass would
    crawl: against it every group is written in the calling thread, when it is handed over."""
    from constellate.config import Settings
    from constellate.store import edge_store

    edge = edge_store(Settings(data_dir=tmp_path))
    try:
        assert edge.concurrent_writes is False
        assert GroupedWriter(edge, NoLease("r1")).background is False  # what label_range builds
    finally:
        edge.close()
    store = RecordingStore()
    store.concurrent_writes = False  # type: ignore[attr-defined]
    w = GroupedWriter(store, NoLease("r1"), group=2)  # type: ignore[arg-type]
    for i in range(5):
        w.add(f"p{i}", {"cluster_id": 0})
    assert [ids for ids, _ in store.calls] == [["p0", "p1"], ["p2", "p3"]]  # written as each group filled
    w.flush()
    assert store.threads == [threading.current_thread().name] * 3 and w.written == 5
    writer = GroupedWriter(RecordingStore(), NoLease("r1"))  # type: ignore[arg-type]
    assert writer.background  # a store that does not say so (a server's) is written from a thread


def test_small_groups_do_not_stall_the_pass() -> None:
    """Backpressure counts ids, not operations: forty one-id operations are handed over without
    waiting for the engine (the writer used to wait once four operations were in flight)."""
    gate = threading.Event()
    store = RecordingStore(gate)
    w = GroupedWriter(store, NoLease("r1"), group=1)  # type: ignore[arg-type]
    added = threading.Event()

    def add_many() -> None:
        for i in range(40):
            w.add(f"p{i}", {"cluster_id": i})
        added.set()

    try:
        threading.Thread(target=add_many, daemon=True).start()
        assert added.wait(5), "the pass waited on the engine with 40 ids pending"
        assert store.calls == []  # none written yet: the gate is shut
    finally:
        gate.set()
        w.__exit__(None, None, None)
    assert sorted(pid for ids, _ in store.calls for pid in ids) == sorted(f"p{i}" for i in range(40))


def test_no_more_than_in_flight_ids_are_handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Operations of ten ids with room for fifty: the sixth waits until the engine wrote one."""
    monkeypatch.setattr(writer_module, "IN_FLIGHT", 50)
    gate = threading.Event()
    store = RecordingStore(gate)
    w = GroupedWriter(store, NoLease("r1"), group=10)  # type: ignore[arg-type]
    five, six = threading.Event(), threading.Event()

    def add(ops: int, done: threading.Event, first: int) -> None:
        for op in range(first, first + ops):
            for j in range(10):
                w.add(f"p{op}-{j}", {"cluster_id": op})
        done.set()

    try:
        threading.Thread(target=add, args=(5, five, 0), daemon=True).start()
        assert five.wait(5), "five operations of ten ids fit in fifty"
        threading.Thread(target=add, args=(1, six, 5), daemon=True).start()
        assert not six.wait(0.5), "a sixth operation was handed over with fifty ids in flight"
    finally:
        gate.set()
        assert six.wait(5)
        w.__exit__(None, None, None)
    assert len(store.calls) == 6 and w.written == 60


def test_a_lost_lease_stops_the_writes() -> None:
    """Checked when an operation is handed over and again when the thread writes it."""
    gate = threading.Event()
    store = RecordingStore(gate)
    lease = CountedLease(allowed=3)  # p0 handed over and written (2 checks), p1 handed over (1)
    w = GroupedWriter(store, lease, group=1)  # type: ignore[arg-type]
    try:
        w.add("p0", {"cluster_id": 0})
        gate.set()
        w._wait_oldest()  # p0 written
        gate.clear()
        w.add("p1", {"cluster_id": 1})  # handed over; the lease is lost before the thread writes it
        with pytest.raises(LeaseLost):
            w.add("p2", {"cluster_id": 2})
        gate.set()
        with pytest.raises(LeaseLost):
            w.flush()  # the thread's own check refused p1
    finally:
        gate.set()
        w.__exit__(LeaseLost, None, None)
    assert [pid for ids, _ in store.calls for pid in ids] == ["p0"]


def test_stored_scores_stay_within_half_the_tolerance() -> None:
    scores = np.random.default_rng(0).random(10_000)
    threshold, tolerance = 0.6, 0.02
    stored = stored_scores(scores, threshold, tolerance)
    near_top = scores >= threshold - 0.15
    assert np.all(np.abs(stored - scores)[near_top] <= tolerance / 4 + 1e-9)
    assert np.all(np.abs(stored - scores) <= tolerance / 2 + 1e-9)  # the next run rewrites none
    assert np.all(np.abs(stored - scores)[scores > threshold] <= 0.0005 + 1e-9)  # the ranking
    assert len(np.unique(stored[~near_top])) <= (threshold - 0.15) / tolerance + 2  # few groups
    assert np.array_equal(stored_scores(scores, threshold, 0.0), np.round(scores, 10))  # 0: as computed
