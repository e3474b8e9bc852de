"""The recluster pipeline on the embedded store: labels, catalogue, stable ids, crash safety."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from constellate.catalogue import NameCache, top_outliers
from constellate.config import Settings
from constellate.labels import both_slots, label_filter, slot_field
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.pipeline.sample import read_sample
from constellate.status import store_status
from constellate.store import Filter, IsEmpty, Match, edge_store
from constellate.tickets import point_id
from tests.topics import topic_data
from tests.views import all_views, view


@pytest.fixture
def small_settings(tmp_path) -> Settings:
    # 5 topics x 60 tickets: below umap_min_points, so PCA + HDBSCAN (no numba start-up in unit tests)
    return Settings(data_dir=tmp_path / "data", min_cluster_size=20)


@pytest.fixture
def filled(small_settings):
    store = edge_store(small_settings)
    store.ensure_collections(32)
    tickets, vectors, gold = topic_data(5, 60)
    store.upsert_tickets(tickets, vectors)
    yield store, tickets, gold
    store.close()


def _labels(store, tickets) -> tuple[list[int], list[str]]:
    views = [view(store, t.id) for t in tickets]
    return [v["cluster_id"] for v in views], [v["cluster_name"] for v in views]


def test_a_run_labels_every_ticket_and_writes_catalogue_and_record(
    filled, small_settings, hash_embedder
) -> None:
    store, tickets, gold = filled
    run = recluster(store, small_settings, namer=KeyBERTNamer(hash_embedder))
    assert run["status"] == "succeeded" and run["n_points"] == 300 and run["n_clusters"] == 5
    ids, names = _labels(store, tickets)
    assert adjusted_rand_score(gold, ids) == 1.0
    catalogue = store.list_clusters(run["run_id"])
    assert sorted(c.payload["size"] for c in catalogue) == [60] * 5
    by_id = {c.payload["cluster_id"]: c.payload for c in catalogue}
    assert all(names[i] == by_id[ids[i]]["name"] for i in range(len(tickets)))
    assert len({c["name"] for c in by_id.values()}) == 5  # distinct names
    refund = by_id[ids[0]]  # topic 0 is about refunds
    assert any("refund" in k for k in refund["keywords"]), refund
    assert len(refund["exemplars"]) == 5 and all(e.startswith("t0-") for e in refund["exemplars"])
    for key in ("silhouette", "davies_bouldin", "outlier_fraction", "seconds", "params", "events"):
        assert key in run
    assert set(run["seconds"]) >= {
        "sample",
        "fit",
        "reduce",
        "cluster",
        "match",
        "name",
        "write",
        "switch",
        "total",
    }
    status = store_status(store)
    assert status["clusters"] == 5 and status["current_run"] == run["run_id"]
    assert status["outliers"] == pytest.approx(300 * small_settings.outlier_share, abs=2)
    flagged = store.count(label_filter(store.get_state()["slot"], is_outlier=True))
    assert flagged == status["outliers"]
    # a flagged ticket's rank is its score (the first run wrote both slots); no other ticket has one
    for slot in ("a", "b"):
        for t in tickets:
            p = store.get_ticket(t.id).payload
            expected = p[f"{slot}_outlier_score"] if p[f"{slot}_is_outlier"] else None
            assert p.get(f"{slot}_outlier_rank") == expected
    live = NameCache().live(store)
    top = top_outliers(store, live, 100)
    assert len(top) == flagged and [v["outlier_score"] for v in top] == sorted(
        (v["outlier_score"] for v in top), reverse=True
    )


def test_a_run_ranks_flagged_tickets_an_older_writer_left_unranked_or_misranked(
    filled, small_settings, hash_embedder
) -> None:
    """Labels an older version wrote: flagged tickets with no rank (the next process to open the
    store ranks them) and one whose rank is not its score (the next run rewrites it), so /outliers
    lists every flagged ticket in score order."""
    store, _, _ = filled
    namer = KeyBERTNamer(hash_embedder)
    recluster(store, small_settings, namer=namer)
    top = top_outliers(store, NameCache().live(store), 1000)
    victim = top[0]["ticket_id"]
    for slot in ("a", "b"):
        flagged = Filter(must=(Match(slot_field(slot, "is_outlier"), True),))
        store.set_payload_where(flagged, {slot_field(slot, "outlier_rank"): None})
        store.set_payload_where(
            Filter(must=(Match("ticket_id", victim),)), {slot_field(slot, "outlier_rank"): 0.0}
        )
    store.close()
    store = edge_store(small_settings)  # a fresh process: nothing ensured yet
    try:
        recluster(store, small_settings, namer=namer)
        slot = store.get_state()["slot"]
        flagged_n = store.count(label_filter(slot, is_outlier=True))
        after = top_outliers(store, NameCache().live(store), 1000)
        assert flagged_n and len(after) == flagged_n
        scores = [v["outlier_score"] for v in after]
        assert scores == sorted(scores, reverse=True)
        p = store.get_ticket(victim).payload
        assert p[slot_field(slot, "is_outlier")] is True  # still the top outlier on the same data
        assert p[slot_field(slot, "outlier_rank")] == p[slot_field(slot, "outlier_score")]
    finally:
        store.close()


def test_rerun_on_unchanged_data_keeps_ids_and_names(filled, small_settings, hash_embedder) -> None:
    store, tickets, _ = filled
    namer = KeyBERTNamer(hash_embedder)
    first = recluster(store, small_settings, namer=namer)
    ids1, names1 = _labels(store, tickets)
    second = recluster(store, small_settings, namer=namer)
    ids2, names2 = _labels(store, tickets)
    assert first["slot"] != second["slot"]
    same = np.mean(np.array(ids1) == np.array(ids2))
    assert same >= 0.95
    assert names1 == names2
    assert {e["event"] for e in second["events"]} == {"continued"}
    assert len(store.list_clusters(first["run_id"])) == 0  # old catalogue pruned after the switch


def test_a_new_topic_is_born_and_others_keep_their_ids(filled, small_settings, hash_embedder) -> None:
    store, tickets, _ = filled
    namer = KeyBERTNamer(hash_embedder)
    recluster(store, small_settings, namer=namer)
    before, _ = _labels(store, tickets)
    fresh, vectors, _ = topic_data(1, 30, seed=5, prefix="new", start=6)  # 10 % more, a new topic
    store.upsert_tickets(fresh, vectors)
    run = recluster(store, small_settings, namer=namer)
    after, _ = _labels(store, tickets)
    assert np.mean(np.array(before) == np.array(after)) >= 0.95
    born = [e for e in run["events"] if e["event"] == "born"]
    assert len(born) == 1
    new_ids, _ = _labels(store, fresh)
    assert set(new_ids) == {born[0]["cluster_id"]}
    assert born[0]["cluster_id"] not in set(before)


def test_a_pinned_name_survives_and_a_drifted_one_is_renamed(filled, small_settings, hash_embedder) -> None:
    store, _, _ = filled
    namer = KeyBERTNamer(hash_embedder)
    run = recluster(store, small_settings, namer=namer)
    catalogue = store.list_clusters(run["run_id"], with_vector=True)
    pinned, drifted = catalogue[0], catalogue[1]
    store.upsert_clusters(
        run["run_id"],
        [
            {**pinned.payload, "name": "Refund requests", "pinned": True},
            {**drifted.payload, "name_keywords": ["zzz"]},
        ],
        np.stack([pinned.vector, drifted.vector]),
    )
    run2 = recluster(store, small_settings, namer=namer)
    names = {c.payload["cluster_id"]: c.payload for c in store.list_clusters(run2["run_id"])}
    assert names[pinned.payload["cluster_id"]]["name"] == "Refund requests"
    assert names[pinned.payload["cluster_id"]]["pinned"] is True
    assert names[drifted.payload["cluster_id"]]["name"] == drifted.payload["name"]  # fresh name from keywords
    assert names[drifted.payload["cluster_id"]]["name_keywords"] != ["zzz"]


class _DiesMidWrite:
    """Wraps a store so the label write-back dies at its second batch (a crash half-way)."""

    def __init__(self, store) -> None:
        self._store = store
        self.calls = 0

    def set_payload_ids(self, ids, payload):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("worker killed during write-back")
        self._store.set_payload_ids(ids, payload)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_run_that_dies_half_way_leaves_the_old_labels_live(filled, small_settings, hash_embedder) -> None:
    store, tickets, _ = filled
    namer = KeyBERTNamer(hash_embedder)
    good = recluster(store, small_settings, namer=namer)
    before = _labels(store, tickets)
    fresh, vectors, _ = topic_data(1, 30, seed=5, prefix="new", start=6)
    store.upsert_tickets(fresh, vectors)
    with pytest.raises(RuntimeError, match="killed"):
        recluster(_DiesMidWrite(store), small_settings, namer=namer)
    assert _labels(store, tickets) == before  # readers see the previous complete labelling
    assert store.get_state()["current_run"] == good["run_id"]
    assert store_status(store)["clusters"] == good["n_clusters"]
    failed = store.list_runs()[0]
    assert failed["status"] == "failed" and "killed" in failed["error"]
    # half of the dead run's slot was written, but nobody reads that slot
    half = Filter(must=(Match(slot_field(failed["slot"], "label_run"), failed["run_id"]),))
    assert 0 < store.count(half) < 330
    after = recluster(store, small_settings, namer=namer)
    assert after["status"] == "succeeded" and after["n_points"] == 330
    assert store.get_state()["current_run"] == after["run_id"]


def test_a_first_run_that_dies_half_way_is_rewritten_whole_by_the_next(
    filled, small_settings, hash_embedder
) -> None:
    store, _, _ = filled
    namer = KeyBERTNamer(hash_embedder)
    with pytest.raises(RuntimeError, match="killed"):
        recluster(_DiesMidWrite(store), small_settings, namer=namer)
    assert store.get_state().get("current_run") is None
    # its labels name no run (a first run writes no label_run): they are found by being a first run's
    stray = Filter(must_not=(IsEmpty(slot_field("a", "cluster_id")),))
    assert 0 < store.count(stray) < 300
    run = recluster(store, small_settings, namer=namer)
    assert run["status"] == "succeeded" and run["written"] == 300 and run["unchanged"] == 0
    live_ids = {int(k) for k in run["sizes"]}
    for slot in ("a", "b"):  # both slots hold this run's labels, so the next run diffs against them
        used = set(store.facet(slot_field(slot, "cluster_id")))
        assert used <= live_ids
        assert store.count(Filter(must=(IsEmpty(slot_field(slot, "cluster_id")),))) == 0
    # the first run's labels carry no run id (no posting of every ticket under one value); readers
    # see the run's id all the same
    assert store.count(Filter(must=(Match(slot_field("a", "label_run"), run["run_id"]),))) == 0
    assert {v["label_run"] for v in all_views(store).values()} == {run["run_id"]}


def test_a_first_run_clears_the_run_id_an_older_failed_first_run_left(
    filled, small_settings, hash_embedder
) -> None:
    """A store from before first runs stopped naming theirs: a failed first run's labels carry its
    id. The next first run clears it, so no after-switch repair takes them for a failed run's."""
    store, tickets, _ = filled
    store.save_run({"run_id": "run-old", "started_at": "2026-01-01T00:00:00Z", "status": "failed"})
    old = both_slots(
        {"cluster_id": 5, "is_outlier": False, "label_run": "run-old", "assigned_by": "recluster"}
    )
    store.set_payload_ids([point_id(t.id) for t in tickets[:50]], old)
    run = recluster(store, small_settings, namer=KeyBERTNamer(hash_embedder))
    assert run["status"] == "succeeded" and run["relabelled"] == 0
    for slot in ("a", "b"):
        assert store.count(Filter(must=(Match(slot_field(slot, "label_run"), "run-old"),))) == 0
    assert {v["assigned_by"] for v in all_views(store).values()} == {"recluster"}


def test_a_late_label_of_a_superseded_first_run_is_relabelled_after_the_switch(
    filled, small_settings, hash_embedder
) -> None:
    """Two first runs: the one superseded mid-write has a write in flight that lands after the newer
    one labelled that ticket. Its label names no run; its cluster id is in no catalogue."""
    store, tickets, _ = filled
    late = both_slots({"cluster_id": 987_654, "is_outlier": False, "outlier_score": 0.1})

    def progress(message: str) -> None:
        if message.startswith("switch:"):
            store.set_payload_ids([point_id(tickets[0].id)], late)

    run = recluster(store, small_settings, namer=KeyBERTNamer(hash_embedder), progress=progress)
    assert run["status"] == "succeeded" and run["relabelled"] == 1  # that ticket, no other
    seen = view(store, tickets[0].id)
    assert seen["cluster_id"] in {int(k) for k in run["sizes"]} and seen["assigned_by"] == "ingest"
    assert 987_654 not in store.facet(slot_field(store.get_state()["slot"], "cluster_id"))


def test_a_late_label_landing_after_the_repair_is_not_skipped_over(
    filled, small_settings, hash_embedder
) -> None:
    """The same late write, landing after the switch's repair on a store where nothing else changes:
    the next scheduled run is not skipped as 'nothing changed', and its repair relabels the ticket."""
    store, tickets, _ = filled
    namer = KeyBERTNamer(hash_embedder)
    settings = small_settings.model_copy(update={"recluster_mode": "incremental"})
    first = recluster(store, settings, namer=namer)
    quiet = recluster(store, settings, namer=namer)
    assert quiet["status"] == "skipped", quiet
    store.set_payload_ids(
        [point_id(tickets[0].id)],
        both_slots({"cluster_id": 987_654, "is_outlier": False, "outlier_score": 0.1}),
    )
    again = recluster(store, settings, namer=namer)
    assert again["status"] == "succeeded" and again["mode"] == "incremental" and again["relabelled"] == 1
    assert view(store, tickets[0].id)["cluster_id"] in {int(k) for k in first["sizes"]}
    # the repair's label is a guess against the live run, which the next run settles; then quiet
    assert recluster(store, settings, namer=namer)["written"] <= 1
    assert recluster(store, settings, namer=namer)["status"] == "skipped"


def test_runs_left_running_by_a_dead_process_are_marked_failed(filled, small_settings) -> None:
    store, _, _ = filled
    store.save_run({"run_id": "run-dead", "started_at": "2026-01-01T00:00:00Z", "status": "running"})
    recluster(store, small_settings)
    assert store.get_run("run-dead")["status"] == "failed"


def test_an_empty_store_is_skipped(small_settings) -> None:
    store = edge_store(small_settings)
    try:
        store.ensure_collections(32)
        run = recluster(store, small_settings)
        assert run["status"] == "skipped" and run["reason"] == "no tickets stored"
        assert store.get_state().get("current_run") is None
    finally:
        store.close()


class _IngestsDuringRun:
    """Stores fresh tickets the moment the run starts writing labels (after its scan)."""

    def __init__(self, store, tickets, vectors) -> None:
        self._store, self._fresh = store, (tickets, vectors)

    def set_payload_ids(self, ids, payload):
        if self._fresh:
            self._store.upsert_tickets(*self._fresh)
            self._fresh = None
        return self._store.set_payload_ids(ids, payload)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_tickets_stored_during_a_run_are_labelled_when_it_switches(filled, small_settings) -> None:
    store, tickets, _ = filled
    fresh, vectors, _ = topic_data(1, 10, seed=3, prefix="mid", start=2)
    run = recluster(_IngestsDuringRun(store, fresh, vectors), small_settings)
    assert run["n_points"] == 300 and run["relabelled"] == 10
    expected = view(store, tickets[120].id)["cluster_id"]  # topic 2
    for t in fresh:
        seen = view(store, t.id)
        assert seen["cluster_id"] == expected and seen["assigned_by"] == "ingest"


def test_labels_guessed_at_ingest_do_not_let_a_new_topic_take_an_old_id(filled, small_settings) -> None:
    from constellate.assign import CentroidAssigner

    store, tickets, _ = filled
    recluster(store, small_settings)
    before, _ = _labels(store, tickets)
    fresh, vectors, _ = topic_data(1, 30, seed=5, prefix="new", start=6)
    _, guessed = CentroidAssigner(store).label(vectors)  # all guessed into some old cluster
    store.upsert_tickets(fresh, vectors, guessed)
    run = recluster(store, small_settings)
    after, _ = _labels(store, tickets)
    born = [e["cluster_id"] for e in run["events"] if e["event"] == "born"]
    new_ids, _ = _labels(store, fresh)
    assert len(born) == 1 and set(new_ids) == set(born)
    assert before == after


def test_unchanged_data_writes_no_label(filled, small_settings, hash_embedder) -> None:
    store, _, _ = filled
    namer = KeyBERTNamer(hash_embedder)
    recluster(store, small_settings, namer=namer)
    again = recluster(store, small_settings, namer=namer)
    assert again["written"] == 0 and again["unchanged"] == 300


def _outside_the_sample(store, settings, tickets, gold, topic: int):
    """A ticket of ``topic`` that the run's fit sample leaves out (so moving it changes no centroid)."""
    sampled = set(read_sample(store, settings.fit_sample_size, None, settings.seed, 2048).ticket_ids)
    return next(t for t, g in zip(tickets, gold, strict=True) if g == topic and t.id not in sampled)


def test_one_ticket_moved_to_another_topic_is_the_one_write(filled, small_settings, hash_embedder) -> None:
    store, tickets, gold = filled
    settings = small_settings.model_copy(update={"fit_sample_size": 200})
    namer = KeyBERTNamer(hash_embedder)
    recluster(store, settings, namer=namer)
    mover = _outside_the_sample(store, settings, tickets, gold, 0)
    donor = next(i for i, g in enumerate(gold) if g == 3)
    vector = store.get_points([point_id(tickets[donor].id)], with_vector=True)[0].vector
    store.upsert_tickets([mover], np.asarray([vector]))  # same id, now a topic-3 ticket
    run = recluster(store, settings, namer=namer)
    assert run["written"] == 1
    assert view(store, mover.id)["cluster_id"] == view(store, tickets[donor].id)["cluster_id"]


def test_a_labelled_ticket_stays_unless_another_cluster_is_clearly_nearer(
    filled, small_settings, hash_embedder
) -> None:
    """Hysteresis in a full run: a ticket a run labelled keeps its continued cluster while another
    centroid is nearer by less than ``label_stay_margin``; clearly nearer, it moves. (Its vector is
    moved in place, as if the boundary had moved; a re-ingested ticket is labelled afresh.)"""
    store, tickets, gold = filled
    settings = small_settings.model_copy(update={"fit_sample_size": 200, "recluster_mode": "full"})
    namer = KeyBERTNamer(hash_embedder)
    recluster(store, settings, namer=namer)
    a = _outside_the_sample(store, settings, tickets, gold, 0)
    home = view(store, a.id)["cluster_id"]
    other = view(store, next(t for t, g in zip(tickets, gold, strict=True) if g == 1).id)["cluster_id"]
    run = store.get_state()["current_run"]
    centroids = {int(r.payload["cluster_id"]): r.vector for r in store.list_clusters(run, with_vector=True)}

    h, o = np.asarray(centroids[home]), np.asarray(centroids[other])

    def mix(weight_other: float) -> np.ndarray:
        m = (1 - weight_other) * h + weight_other * o
        return m / np.linalg.norm(m)

    # a hair nearer the other cluster: similarity to it higher by half the margin
    weight = next(w for w in np.linspace(0.5, 1.0, 501) if mix(w) @ o - mix(w) @ h >= 0.015)

    def place() -> None:
        store.tickets.update_vectors([point_id(a.id)], np.asarray([mix(weight)]))

    place()
    assert recluster(store, settings, namer=namer)["written"] <= 1  # at most its outlier score
    assert view(store, a.id)["cluster_id"] == home
    place()
    recluster(store, settings.model_copy(update={"label_stay_margin": 0.0}), namer=namer)
    assert view(store, a.id)["cluster_id"] == other  # without the margin: the nearest
