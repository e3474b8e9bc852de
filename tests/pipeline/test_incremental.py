"""Incremental runs: the live clusters kept, new topics added, only what changed read and written."""

from __future__ import annotations

import numpy as np
import pytest

from constellate.assign import CentroidAssigner
from constellate.config import Settings
from constellate.edits import merge_clusters, split_cluster
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.pipeline.mode import choose_mode, fingerprint
from constellate.pipeline.plan import FULL, INCREMENTAL
from constellate.store import edge_store
from constellate.tickets import point_id
from tests.topics import topic_data
from tests.views import all_views, view


@pytest.fixture
def inc_settings(tmp_path) -> Settings:
    # a fit sample smaller than the store, as at scale: auto mode runs incrementally after the first run
    return Settings(data_dir=tmp_path / "data", min_cluster_size=20, fit_sample_size=250)


@pytest.fixture
def labelled(inc_settings, hash_embedder):
    store = edge_store(inc_settings)
    store.ensure_collections(32)
    tickets, vectors, gold = topic_data(5, 60)
    store.upsert_tickets(tickets, vectors)
    namer = KeyBERTNamer(hash_embedder)
    first = recluster(store, inc_settings, namer=namer)
    assert first["mode"] == FULL and first["status"] == "succeeded"
    yield store, namer, tickets, gold
    store.close()


def _catalogue(store) -> dict[int, dict]:
    return {r.payload["cluster_id"]: r.payload for r in store.list_clusters(store.get_state()["current_run"])}


def _every_label_is_live(store) -> dict[str, dict]:
    live = set(_catalogue(store))
    views = all_views(store)
    assert len(views) == store.count()
    for ticket_id, v in views.items():
        assert v["cluster_id"] in live, (ticket_id, v["cluster_id"], sorted(live))
    return views


def _ingest(store, tickets, vectors) -> None:
    """As the ingestion consumer does: stored with a nearest-centroid guess against the live run."""
    _, guessed = CentroidAssigner(store).label(vectors)
    store.upsert_tickets(tickets, vectors, guessed)


def test_the_mode_follows_the_rules(inc_settings) -> None:
    s = inc_settings
    state = {"current_run": "r1", "slot": "a", "outlier_scale": {"quantiles": [0, 1], "threshold": 0.95}}
    state |= {"runs_since_rebase": 3, "rebase_tickets": 1000, "rebase_fingerprint": fingerprint(s)}
    assert choose_mode(s, state, 1100, full=False)[0] == INCREMENTAL
    assert choose_mode(s, state, 1100, full=True) == (FULL, "asked for")
    assert choose_mode(s, {}, 1100, full=False) == (FULL, "first run")
    assert choose_mode(s, state, 200, full=False)[0] == FULL  # fits in the fit sample
    assert choose_mode(s, state | {"runs_since_rebase": 24}, 1100, full=False)[0] == FULL
    assert choose_mode(s, state, 1250, full=False)[0] == FULL  # grew by 25 %
    changed = s.model_copy(update={"min_cluster_size": 30})
    assert choose_mode(changed, state, 1100, full=False)[0] == FULL
    assert choose_mode(s.model_copy(update={"recluster_mode": "full"}), state, 1100, False)[0] == FULL
    forced = s.model_copy(update={"recluster_mode": "incremental"})
    assert choose_mode(forced, state, 200, full=False)[0] == INCREMENTAL
    assert choose_mode(forced, {}, 200, full=False)[0] == FULL  # nothing to keep yet


def test_an_unchanged_store_reads_and_writes_nothing(labelled, inc_settings) -> None:
    store, namer, _tickets, _ = labelled
    before = all_views(store)
    catalogue = _catalogue(store)
    live = store.get_state()["current_run"]
    run = recluster(store, inc_settings, namer=namer)
    # nothing new, guessed, re-ingested or deleted: the seeded fit would find what the live run found
    assert run["mode"] == INCREMENTAL and run["status"] == "skipped", run
    assert run["reason"] == f"nothing changed since run {live}" and run["n_points"] == 300
    assert store.get_state()["current_run"] == live
    after = _catalogue(store)
    assert {c: (e["name"], e["size"]) for c, e in after.items()} == {
        c: (e["name"], e["size"]) for c, e in catalogue.items()
    }
    assert all_views(store) == before


def test_a_reingested_or_deleted_ticket_is_a_change(labelled, inc_settings) -> None:
    store, namer, tickets, _ = labelled
    vectors = store.get_points([point_id(tickets[0].id)], with_vector=True)[0].vector[None, :]
    _ingest(store, [tickets[0]], vectors)  # re-ingested: its kept labels are now guesses
    run = recluster(store, inc_settings, namer=namer)
    assert run["status"] == "succeeded" and run["n_read"] == 1
    assert view(store, tickets[0].id)["assigned_by"] == "recluster"
    assert recluster(store, inc_settings, namer=namer)["status"] == "skipped"
    store.tickets.delete([point_id(tickets[1].id)])  # no route deletes tickets; the engine still can
    run = recluster(store, inc_settings, namer=namer)
    assert run["status"] == "succeeded" and run["n_points"] == 299 and run["written"] == 0


def test_a_new_topic_is_born_and_only_its_tickets_are_written(labelled, inc_settings) -> None:
    store, namer, _tickets, _ = labelled
    before = all_views(store)
    fresh, vectors, _ = topic_data(1, 40, seed=5, prefix="new", start=6)
    _ingest(store, fresh, vectors)
    run = recluster(store, inc_settings, namer=namer)
    assert run["mode"] == INCREMENTAL and run["born"] == 1
    born = [e["cluster_id"] for e in run["events"] if e["event"] == "born"]
    assert len(born) == 1
    assert {view(store, t.id)["cluster_id"] for t in fresh} == set(born)
    assert all(view(store, t.id)["assigned_by"] == "recluster" for t in fresh)
    assert run["n_read"] == 40 and run["written"] == 40  # the new tickets, nothing else
    views = _every_label_is_live(store)
    assert {k: v for k, v in views.items() if k in before} == before  # old labels untouched
    entry = _catalogue(store)[born[0]]
    assert entry["size"] == 40 and entry["name"] and entry["born_run"] == run["run_id"]
    assert entry["name"] not in {e["name"] for c, e in _catalogue(store).items() if c != born[0]}
    again = recluster(store, inc_settings, namer=namer)  # nothing left to do
    assert again["status"] == "skipped" and store.get_state()["current_run"] == run["run_id"]


def test_new_tickets_of_known_topics_join_them_without_a_new_cluster(labelled, inc_settings) -> None:
    store, namer, tickets, gold = labelled
    fresh, vectors, fresh_gold = topic_data(3, 10, seed=9, prefix="more")
    _ingest(store, fresh, vectors)
    run = recluster(store, inc_settings, namer=namer)
    assert run["born"] == 0 and run["written"] == 30
    home = {g: view(store, t.id)["cluster_id"] for t, g in zip(tickets, gold, strict=True)}
    assert all(view(store, t.id)["cluster_id"] == home[g] for t, g in zip(fresh, fresh_gold, strict=True))
    assert sum(e["size"] for e in _catalogue(store).values()) == 330


def test_a_labelled_ticket_within_reach_of_a_born_cluster_moves_to_it(labelled, inc_settings) -> None:
    store, namer, tickets, _ = labelled
    fresh, vectors, _ = topic_data(1, 40, seed=5, prefix="new", start=6)
    settled = tickets[0]
    # its vector now sits among the new topic's, its label is still the one a run wrote (in place, so
    # it stays "settled": only the search around the born centroid can find it)
    store.tickets.update_vectors([point_id(settled.id)], vectors[:1] * 0.999 + 0.001)
    _ingest(store, fresh, vectors)
    run = recluster(store, inc_settings, namer=namer)
    born = [e["cluster_id"] for e in run["events"] if e["event"] == "born"]
    assert view(store, settled.id)["cluster_id"] == born[0]
    assert run["n_read"] == 41 and run["written"] == 41


def test_human_edits_hold_through_incremental_runs(labelled, inc_settings) -> None:
    store, namer, tickets, gold = labelled
    home = {g: view(store, t.id)["cluster_id"] for t, g in zip(tickets, gold, strict=True)}
    merge_clusters(store, home[0], home[1])
    moved = [t.id for t, g in zip(tickets, gold, strict=True) if g == 2][:5]
    split = split_cluster(store, home[2], moved, "Password edge cases")["cluster_id"]
    # the split's tickets come back re-ingested (guessed at ingest into their old cluster)
    again = [t for t in tickets if t.id in moved]
    stored = store.get_points([point_id(t.id) for t in again], with_vector=True)
    _ingest(
        store,
        again,
        np.stack(
            [r.vector for r in sorted(stored, key=lambda r: [point_id(t.id) for t in again].index(r.id))]
        ),
    )
    fresh, vectors, _ = topic_data(1, 40, seed=5, prefix="new", start=6)
    _ingest(store, fresh, vectors)
    last = store.get_points([point_id(tickets[-1].id)], with_vector=True)[0].vector[None, :]
    for i in range(2):
        if i:  # something changed, or the second run is skipped: one ticket re-ingested
            _ingest(store, [tickets[-1]], last)
        run = recluster(store, inc_settings, namer=namer)
        assert run["mode"] == INCREMENTAL and run["status"] == "succeeded"
        catalogue = _catalogue(store)
        assert home[1] not in catalogue and split in catalogue
        assert catalogue[split]["name"] == "Password edge cases" and catalogue[split]["pinned"]
        views = _every_label_is_live(store)
        assert {views[t]["cluster_id"] for t in moved} == {split}
        assert {views[t.id]["cluster_id"] for t, g in zip(tickets, gold, strict=True) if g == 1} == {home[0]}


class _CopyDies:
    """A store whose after-switch copy into the other slot dies half-way: the copy is the only
    writer of labels into the slot that was live when the run started."""

    def __init__(self, store) -> None:
        self._store, self.calls = store, 0
        self.live = store.get_state()["slot"]

    def set_payload_ids(self, ids, payload):
        if any(k.startswith(self.live + "_") for k in payload):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("killed during the copy")
        return self._store.set_payload_ids(ids, payload)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_copy_cut_short_is_finished_by_the_next_run(labelled, inc_settings) -> None:
    store, namer, _tickets, _ = labelled
    fresh, vectors, _ = topic_data(1, 40, seed=5, prefix="new", start=6)
    _ingest(store, fresh, vectors)
    run = recluster(_CopyDies(store), inc_settings, namer=namer)
    assert run["status"] == "succeeded" and "killed" in run["after_switch_error"]
    born = {view(store, t.id)["cluster_id"] for t in fresh}
    nxt = recluster(store, inc_settings, namer=namer)  # targets the slot the copy left half-done
    assert nxt["synced"] > 0 and nxt["status"] == "succeeded"
    assert {view(store, t.id)["cluster_id"] for t in fresh} == born
    _every_label_is_live(store)


def test_a_topic_that_grows_over_several_runs_is_born_once_big_enough(labelled, inc_settings) -> None:
    store, namer, _, _ = labelled
    fresh, vectors, _ = topic_data(1, 30, seed=5, prefix="slow", start=6)
    runs = []
    for lo in range(0, 30, 10):  # 10 tickets per run: below min_cluster_size (20) until the third
        _ingest(store, fresh[lo : lo + 10], vectors[lo : lo + 10])
        runs.append(recluster(store, inc_settings, namer=namer))
    assert all(r["mode"] == INCREMENTAL and r["status"] == "succeeded" for r in runs)
    assert runs[0]["born"] == 0  # ten tickets are no cluster yet: labelled into the nearest live one
    # by the third run two thirds of the topic's tickets carry an incremental run's label: they are
    # still new since the last full run, so the topic is born rather than waiting for the rebase
    born = [e["cluster_id"] for r in runs for e in r["events"] if e["event"] == "born"]
    assert len(born) == 1, [r["born"] for r in runs]
    assert sum(view(store, t.id)["cluster_id"] == born[0] for t in fresh) >= 27
