"""One behaviour suite run against both adapters (qdrant-edge on disk, qdrant-client :memory:)."""

from __future__ import annotations

import numpy as np
import pytest

from constellate.exceptions import StoreError
from constellate.store import DateRange, Filter, IsEmpty, Match, MatchAny, edge_store
from constellate.store.edge import EdgeCollection
from constellate.tickets import Ticket, point_id

DIM = 8


def _tickets(n: int, prefix: str = "t", day: int = 1) -> list[Ticket]:
    return [
        Ticket(
            id=f"{prefix}{i}",
            text=f"ticket {i}",
            created_at=f"2026-01-{day:02d}T00:00:00Z",
            metadata={"i": i},
        )
        for i in range(n)
    ]


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_empty_store_reads_as_empty(store) -> None:
    assert store.count() == 0
    assert store.get_ticket("nope") is None
    assert list(store.iter_vectors()) == []
    assert store.list_clusters("r1") == []
    assert store.list_clusters(None) == []
    assert store.list_runs() == []
    assert store.get_state() == {}


def test_upsert_before_ensure_is_refused(store) -> None:
    with pytest.raises(StoreError):
        store.upsert_tickets(_tickets(1), _vectors(1))


def test_upsert_and_get_by_ticket_id(store) -> None:
    store.ensure_collections(DIM)
    tickets = _tickets(3)
    ids = store.upsert_tickets(tickets, _vectors(3))
    assert ids == [point_id("t0"), point_id("t1"), point_id("t2")]
    got = store.get_ticket("t1")
    assert got is not None
    assert got.id == point_id("t1")
    assert got.payload["ticket_id"] == "t1"
    assert got.payload["text"] == "ticket 1"
    assert got.payload["metadata"] == {"i": 1}
    assert got.payload["created_at"] == "2026-01-01T00:00:00Z"


def test_reingest_updates_instead_of_duplicating(store) -> None:
    store.ensure_collections(DIM)
    store.upsert_tickets(_tickets(50), _vectors(50, seed=1))
    changed = [Ticket(id="t7", text="changed text", created_at="2026-01-02T00:00:00Z")]
    store.upsert_tickets(_tickets(50), _vectors(50, seed=2))
    store.upsert_tickets(changed, _vectors(1, seed=3))
    assert store.count() == 50
    assert store.get_ticket("t7").payload["text"] == "changed text"


def test_iter_vectors_pages_through_everything(store) -> None:
    store.ensure_collections(DIM)
    vectors = _vectors(25)
    ids = store.upsert_tickets(_tickets(25), vectors)
    pages = list(store.iter_vectors(page_size=10, fields=["ticket_id"]))
    assert [len(p.ids) for p in pages] == [10, 10, 5]
    seen = {pid: vec for p in pages for pid, vec in zip(p.ids, p.vectors, strict=True)}
    assert set(seen) == set(ids)
    by_id = dict(zip(ids, vectors, strict=True))
    for pid, vec in seen.items():
        np.testing.assert_allclose(vec, by_id[pid], atol=1e-5)
    assert all(set(payload) == {"ticket_id"} for p in pages for payload in p.payloads)


def test_iter_vectors_over_an_id_range_stops_inside_a_page(store) -> None:
    """A fan-out part reads ``start <= id < stop`` (``label.id_ranges``), in point-id order."""
    store.ensure_collections(DIM)
    vectors = _vectors(25)
    ids = store.upsert_tickets(_tickets(25), vectors)
    order = sorted(ids)
    by_id = dict(zip(ids, vectors, strict=True))
    for lo, hi in ((3, 10), (4, 8), (0, 25), (6, 6)):
        stop = order[hi] if hi < len(order) else None
        pages = list(store.iter_vectors(page_size=4, fields=[], start=order[lo], stop=stop))
        assert [pid for p in pages for pid in p.ids] == order[lo:hi]
        for p in pages:
            assert p.vectors.shape == (len(p.ids), DIM) and p.vectors.dtype == np.float32
            assert p.payloads == [{}] * len(p.ids)  # no field asked for, none read (no flag twin)
            for pid, vec in zip(p.ids, p.vectors, strict=True):
                np.testing.assert_allclose(vec, by_id[pid], atol=1e-5)
    store.set_payload_ids(order[:2], {"a_is_outlier": True})
    (first, *_) = store.iter_vectors(page_size=4, fields=["a_is_outlier"])
    assert first.payloads[:3] == [{"a_is_outlier": True}, {"a_is_outlier": True}, {}]


def test_set_payloads_merges_fields_and_filters_see_them(store) -> None:
    store.ensure_collections(DIM)
    ids = store.upsert_tickets(_tickets(10), _vectors(10))
    updates = [
        (pid, {"a_cluster_id": i % 3, "a_is_outlier": i == 4, "a_outlier_score": i / 10})
        for i, pid in enumerate(ids)
    ]
    store.set_payloads(updates)
    t4 = store.get_ticket("t4").payload
    assert t4["text"] == "ticket 4"  # merged, not replaced
    assert t4["a_cluster_id"] == 1 and t4["a_is_outlier"] is True
    assert store.count(Filter(must=(Match("a_cluster_id", 0),))) == 4
    assert store.count(Filter(must=(Match("a_is_outlier", True),))) == 1
    assert store.count(Filter(must_not=(Match("a_is_outlier", True),))) == 9
    assert store.facet("a_cluster_id") == {0: 4, 1: 3, 2: 3}
    both = Filter(must=(MatchAny("a_cluster_id", (1, 2)),), must_not=(Match("a_is_outlier", True),))
    assert store.count(both) == 5
    store.set_payloads([(ids[4], {"a_is_outlier": False})])  # a flag cleared leaves no match behind
    assert store.count(Filter(must=(Match("a_is_outlier", True),))) == 0
    assert store.get_ticket("t4").payload["a_is_outlier"] is False
    store.upsert_tickets(_tickets(2, prefix="late"), _vectors(2, seed=4))
    unlabelled = Filter(must=(IsEmpty("a_cluster_id"),))
    assert store.count(unlabelled) == 2
    assert {
        p.payloads[0]["ticket_id"]
        for p in store.iter_vectors(page_size=1, fields=["ticket_id"], filter=unlabelled)
    } == {"late0", "late1"}


def test_a_filter_for_a_false_flag_is_refused_by_the_edge_adapter(store) -> None:
    """Its twin of a false flag is cleared (a value most points share costs the index most), so a
    filter for false would match nothing: it is refused, and must_not true is the way to ask."""
    store.ensure_collections(DIM)
    ids = store.upsert_tickets(_tickets(2), _vectors(2))
    store.set_payload_ids(ids, {"a_is_outlier": False})
    false = Filter(must=(Match("a_is_outlier", False),))
    if isinstance(store.tickets, EdgeCollection):
        with pytest.raises(StoreError, match="must_not"):
            store.count(false)
    else:  # a server filters bools natively
        assert store.count(false) == 2


def test_one_payload_for_many_points_in_one_call(store) -> None:
    store.ensure_collections(DIM)
    ids = store.upsert_tickets(_tickets(10), _vectors(10))
    store.set_payload_ids(ids[:6], {"a_cluster_id": 7, "a_is_outlier": False})
    store.set_payload_ids(ids[6:], {"a_cluster_id": 8, "a_is_outlier": True})
    assert store.facet("a_cluster_id") == {7: 6, 8: 4}
    assert store.count(Filter(must=(Match("a_is_outlier", True),))) == 4
    assert store.get_ticket("t0").payload["text"] == "ticket 0"  # merged, not replaced
    store.set_payload_ids(ids[6:], {"a_cluster_id": 7})
    assert store.facet("a_cluster_id") == {7: 10}  # a value no point holds any more is not listed


def test_near_ids_finds_every_point_above_the_threshold(store) -> None:
    store.ensure_collections(DIM)
    vectors = _vectors(300, seed=6)
    ids = store.upsert_tickets(_tickets(300), vectors)
    store.set_payload_ids(ids[:150], {"a_assigned_by": "recluster"})
    query = vectors[0]
    sims = vectors @ query
    flt = Filter(must=(Match("a_assigned_by", "recluster"),))
    expected = {ids[i] for i in range(150) if sims[i] >= 0.2}
    found = store.near_ids(query, 0.2, flt, page=4)  # more hits than the first answer: asked again
    assert len(expected) > 16 and {pid for pid, _ in found} == expected
    paged = store.near_ids(query, 0.2, flt, page=2, max_hits=5)  # and beyond max_hits, by offset
    assert [pid for pid, _ in paged] == [pid for pid, _ in found]
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.2 - 1e-6


def test_search_honours_the_filter(store) -> None:
    store.ensure_collections(DIM)
    vectors = _vectors(40, seed=5)
    ids = store.upsert_tickets(_tickets(40), vectors)
    store.set_payloads([(pid, {"b_cluster_id": i % 4}) for i, pid in enumerate(ids)])
    hits = store.search(vectors[3], limit=5)
    assert hits[0].id == ids[3]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    filtered = store.search(vectors[3], limit=50, filter=Filter(must=(Match("b_cluster_id", 2),)))
    assert len(filtered) == 10
    assert all(h.payload["b_cluster_id"] == 2 for h in filtered)
    scores = [h.score for h in filtered]
    assert scores == sorted(scores, reverse=True)


def test_date_range_filter(store) -> None:
    store.ensure_collections(DIM)
    store.upsert_tickets(_tickets(3, "a", day=1), _vectors(3, 1))
    store.upsert_tickets(_tickets(4, "b", day=5), _vectors(4, 2))
    assert store.count(Filter(must=(DateRange("created_at", gte="2026-01-03T00:00:00Z"),))) == 4
    assert store.count(Filter(must=(DateRange("created_at", lt="2026-01-03T00:00:00Z"),))) == 3


def test_scroll_tickets_pages_with_offset(store) -> None:
    store.ensure_collections(DIM)
    store.upsert_tickets(_tickets(7), _vectors(7))
    first, offset = store.scroll_tickets(limit=4)
    assert len(first) == 4 and offset is not None
    rest, end = store.scroll_tickets(limit=4, offset=offset)
    assert len(rest) == 3 and end is None
    assert {r.payload["ticket_id"] for r in first + rest} == {f"t{i}" for i in range(7)}


def test_cluster_catalogue_is_kept_per_run(store) -> None:
    store.ensure_collections(DIM)
    centroids = _vectors(3, seed=9)
    clusters = [
        {"cluster_id": c, "name": f"topic {c}", "size": 10 * c, "keywords": ["a", "b"]} for c in (2, 0, 5)
    ]
    store.upsert_clusters("r1", clusters, centroids)
    store.upsert_clusters("r2", clusters[:1], centroids[:1])
    listed = store.list_clusters("r1")
    assert [r.payload["cluster_id"] for r in listed] == [0, 2, 5]
    assert all(r.payload["run_id"] == "r1" for r in listed)
    five = store.get_cluster("r1", 5)
    assert five.payload["name"] == "topic 5"
    np.testing.assert_allclose(five.vector, centroids[2], atol=1e-5)
    assert store.get_cluster("r2", 5) is None
    assert [r.payload["cluster_id"] for r in store.list_clusters("r2")] == [2]
    assert store.prune_clusters(keep_run_id="r2") == 3
    assert store.list_clusters("r1") == []
    assert [r.payload["cluster_id"] for r in store.list_clusters("r2")] == [2]


def test_runs_and_state(store) -> None:
    store.ensure_collections(DIM)
    store.save_run({"run_id": "r1", "started_at": "2026-01-01T00:00:00Z", "status": "running"})
    store.save_run({"run_id": "r2", "started_at": "2026-01-02T00:00:00Z", "status": "succeeded"})
    store.save_run({"run_id": "r1", "started_at": "2026-01-01T00:00:00Z", "status": "failed"})
    assert [r["run_id"] for r in store.list_runs()] == ["r2", "r1"]
    assert store.get_run("r1")["status"] == "failed"
    assert store.get_run("zzz") is None
    store.set_state({"current_run": "r2"})
    assert store.get_state() == {"current_run": "r2"}


def test_edge_store_persists_across_reopen(settings) -> None:
    s = edge_store(settings)
    s.ensure_collections(DIM)
    s.upsert_tickets(_tickets(30), _vectors(30))
    s.set_state({"current_run": "r9"})
    s.close()
    again = edge_store(settings)
    try:
        assert again.count() == 30
        assert again.get_state() == {"current_run": "r9"}
        assert again.get_ticket("t29").payload["metadata"] == {"i": 29}
    finally:
        again.close()


def test_records_and_deleting_one_cluster(store) -> None:
    store.ensure_collections(DIM)
    store.save_record("edit", "e1", {"edit_id": "e1", "type": "rename", "created_at": "2026-01-01T00:00:00Z"})
    store.save_record("edit", "e2", {"edit_id": "e2", "type": "merge", "created_at": "2026-01-02T00:00:00Z"})
    store.save_record("alert", "a1", {"alert_id": "a1", "created_at": "2026-01-03T00:00:00Z"})
    store.save_record(
        "edit", "e1", {"edit_id": "e1", "type": "rename", "created_at": "2026-01-01T00:00:00Z", "name": "x"}
    )
    assert [e["edit_id"] for e in store.list_records("edit")] == ["e2", "e1"]
    assert store.list_records("edit")[1]["name"] == "x"  # replaced, not duplicated
    assert [a["alert_id"] for a in store.list_records("alert", limit=5)] == ["a1"]
    assert store.get_record("edit", "e1")["name"] == "x" and store.get_record("edit", "nope") is None
    store.save_run({"run_id": "r1", "started_at": "2026-01-01T00:00:00Z", "status": "running"})
    assert [r["run_id"] for r in store.list_runs()] == ["r1"]  # records are not runs
    store.upsert_clusters("r1", [{"cluster_id": 1}, {"cluster_id": 2}], _vectors(2, seed=3))
    store.delete_cluster("r1", 1)
    assert [r.payload["cluster_id"] for r in store.list_clusters("r1")] == [2]


def test_an_older_version_of_a_ticket_never_replaces_a_newer_one(store) -> None:
    """A redelivered stream entry (or a slow consumer) can write a ticket's older text after its
    newer one: the version each write carries decides, not the order the writes arrive in."""
    store.ensure_collections(DIM)
    new, old = _vectors(2, seed=4)
    store.upsert_tickets([Ticket(id="x", text="newer text", version=20)], new[None])
    store.upsert_tickets([Ticket(id="x", text="older text", version=10)], old[None])
    got = store.get_points([point_id("x")], with_vector=True)[0]
    assert got.payload["text"] == "newer text" and got.payload["ingest_version"] == 20
    assert np.allclose(got.vector, new, atol=1e-5)
    store.upsert_tickets([Ticket(id="x", text="newest text", version=30)], old[None])  # newer: taken
    got = store.get_points([point_id("x")], with_vector=True)[0]
    assert got.payload["text"] == "newest text" and np.allclose(got.vector, old, atol=1e-5)


class _Interleaved:
    """An engine shard that runs ``between`` (another whole write) right after its ``at``-th call
    (a read or an update)."""

    def __init__(self, shard, at: int, between) -> None:
        self.shard, self.at, self.between, self.calls, self.ran = shard, at, between, 0, False

    def __getattr__(self, name):
        attr = getattr(self.shard, name)
        if name not in ("update", "retrieve"):
            return attr

        def call(*args, **kwargs):
            out = attr(*args, **kwargs)
            self.calls += 1
            if self.calls == self.at and not self.ran:
                self.ran = True
                self.between()
            return out

        return call


@pytest.mark.parametrize("stored", [True, False], ids=["stored", "new"])
@pytest.mark.parametrize("order", ["older-first", "newer-first", "same-version"])
def test_two_versions_written_interleaved_leave_the_newer_one_whole(settings, order, stored) -> None:
    """Two consumers storing two versions of one ticket (stored before, or new to both): whichever
    write is interrupted by the other, after whichever of its engine calls, the ticket ends with the
    newer version's text and vector together (never one version's text with the other's vector).
    Two different writes of one version (versions tie past 1,024 entries in a millisecond) leave
    one of them whole."""
    store = edge_store(settings)
    store.ensure_collections(DIM)
    vec = {v: _vectors(3, seed=5)[i] for i, v in enumerate((1, 10, 20))}
    text = {1: "first text", 10: "older text", 20: "newer text"}
    outer, inner = {"older-first": (10, 20), "newer-first": (20, 10), "same-version": (10, 20)}[order]
    tie = order == "same-version"

    def version(v: int) -> int:
        return 10 if tie else v

    tickets = store.tickets
    plain = tickets.shard
    for at in range(1, 6):
        tid = f"x{at}"
        if stored:
            store.upsert_tickets([Ticket(id=tid, text=text[1], version=1)], vec[1][None])

        def other(tid: str = tid) -> None:
            hooked = tickets._shard
            tickets._shard = plain  # the interrupting write runs unhooked
            try:
                store.upsert_tickets(
                    [Ticket(id=tid, text=text[inner], version=version(inner))], vec[inner][None]
                )
            finally:
                tickets._shard = hooked

        hooked = tickets._shard = _Interleaved(plain, at, other)
        try:
            store.upsert_tickets([Ticket(id=tid, text=text[outer], version=version(outer))], vec[outer][None])
        finally:
            tickets._shard = plain
        if not hooked.ran:  # the outer write made fewer engine calls: the other comes after it
            other()
            tickets._shard = plain
        got = store.get_points([point_id(tid)], with_vector=True)[0]
        won = next(v for v in (10, 20) if got.payload["text"] == text[v]) if tie else 20
        assert got.payload["text"] == text[won], (at, got.payload["text"])
        assert np.allclose(got.vector, vec[won], atol=1e-5), at
    assert store.count() == 5
    store.close()


def test_an_older_store_loses_the_score_index_and_its_flagged_tickets_are_ranked(store) -> None:
    """A store written before ``outlier_rank`` existed: every ticket's score indexed, no ranks.
    Opening it drops the score index (half of a label write's cost) and ranks the flagged tickets,
    so /outliers' ordered read finds them all, highest score first; unflagged tickets get no rank."""
    from constellate.store.base import RETIRED_INDEXES, TICKET_INDEXES

    old_indexes = {k: v for k, v in TICKET_INDEXES.items() if not k.endswith("outlier_rank")}
    store.tickets.create(DIM, {**old_indexes, **dict.fromkeys(RETIRED_INDEXES, "float")})
    ids = store.upsert_tickets(_tickets(6), _vectors(6))
    scores = [0.1, 0.97, 0.2, 0.99, 0.3, 0.98]
    for slot in ("a", "b"):
        store.set_payloads(
            [
                (pid, {f"{slot}_cluster_id": 0, f"{slot}_is_outlier": s > 0.9, f"{slot}_outlier_score": s})
                for pid, s in zip(ids, scores, strict=True)
            ]
        )
    if isinstance(store.tickets, EdgeCollection):  # the engine reports what it indexes
        assert "a_outlier_score" in store.tickets.shard.info().payload_schema
    store.set_payloads([(ids[1], {"a_outlier_rank": 0.5})])  # one a writer ranked before the backfill's write
    store.ensure_collections(DIM)
    assert store.get_ticket("t1").payload["a_outlier_rank"] == 0.5  # conditional: a rank is never overwritten
    if isinstance(store.tickets, EdgeCollection):
        schema = store.tickets.shard.info().payload_schema
        assert "a_outlier_score" not in schema and "a_outlier_rank" in schema
    for slot in ("a", "b"):
        top, _ = store.scroll_tickets(
            Filter(must=(Match(f"{slot}_is_outlier", True),)), limit=10, order_by=f"-{slot}_outlier_rank"
        )
        assert [r.payload["ticket_id"] for r in top] == ["t3", "t5", "t1"]
    assert store.get_ticket("t0").payload.get("a_outlier_rank") is None
    assert store._rank_flagged() == 0  # nothing left to rank: the next open reads one empty page per slot
