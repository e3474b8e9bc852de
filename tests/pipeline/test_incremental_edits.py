"""Edits against incremental runs, which keep the live catalogue instead of replaying edits: an
edit counts as in it only once applied there, so every window between an edit's record, its
apply, the run's reads, the switch and the copy between the slots ends with the edit in force."""

from __future__ import annotations

import pytest

from constellate.assign import CentroidAssigner
from constellate.config import Settings
from constellate.edits import EDIT_KIND, apply_to_live, mark_applied, merge_clusters, rename_cluster
from constellate.labels import SLOTS, label_filter
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from tests.changes import touch
from tests.topics import topic_data
from tests.views import all_views, view


@pytest.fixture
def live(tmp_path, hash_embedder):
    """Five labelled topics (a fit sample smaller than the store: later runs are incremental) and
    20 new tickets of topics 0 and 1 guessed at ingest, so the next run has work to do."""
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=20, fit_sample_size=250)
    store = edge_store(settings)
    store.ensure_collections(32)
    tickets, vectors, gold = topic_data(5, 60)
    store.upsert_tickets(tickets, vectors)
    namer = KeyBERTNamer(hash_embedder)
    assert recluster(store, settings, namer=namer)["mode"] == "full"
    home = {g: view(store, t.id)["cluster_id"] for t, g in zip(tickets, gold, strict=True)}
    fresh, fresh_vectors, _ = topic_data(2, 10, seed=9, prefix="more")
    store.upsert_tickets(fresh, fresh_vectors, CentroidAssigner(store).label(fresh_vectors)[1])
    yield store, settings, namer, tickets, home, fresh
    store.close()


class _Wrapped:
    """The store, with hooks on some of its methods (called before the method, or ``after`` it)."""

    def __init__(self, store, name, hook, after: bool = False, **more) -> None:
        self._store, self._hooks, self.fired = store, {name: (hook, after), **more}, 0

    def __getattr__(self, name):
        method = getattr(self._store, name)
        if name not in self._hooks:
            return method
        hook, after = self._hooks[name]

        def hooked(*args, **kwargs):
            if not after and hook(*args, **kwargs):
                self.fired += 1
            result = method(*args, **kwargs)
            if after and hook(*args, **kwargs):
                self.fired += 1
            return result

        return hooked


def _merged(store, home, fresh, into, source) -> None:
    """The merge is in force: no catalogue entry, no live label and no hidden label names the source."""
    run = store.get_state()["current_run"]
    catalogue = {r.payload["cluster_id"] for r in store.list_clusters(run)}
    assert source not in catalogue and into in catalogue
    views = all_views(store)
    assert {v["cluster_id"] for v in views.values()} <= catalogue  # no label names a retired cluster
    assert {views[t.id]["cluster_id"] for t in fresh} == {into, home[0]} - {source}
    for slot in SLOTS:  # the hidden slot too: the next incremental run switches to it
        assert store.count(label_filter(slot, cluster_id=source)) == 0


def test_an_edit_applied_after_the_run_read_the_catalogue_is_in_force(live) -> None:
    store, settings, namer, _, home, fresh = live
    into, source = home[0], home[1]
    edit = {
        "edit_id": "edit-late",
        "type": "merge",
        "into": into,
        "from": source,
        "created_at": "2026-12-02T00:00:00.000000Z",
    }
    store.save_record(EDIT_KIND, edit["edit_id"], edit)  # stored; its process has not applied it yet

    def apply_late(run_id, *args, with_vector=False, **kwargs) -> bool:  # once the run has read it
        if with_vector and not wrapped.fired:
            mark_applied(store, edit, apply_to_live(store, dict(edit)))
            return True
        return False

    wrapped = _Wrapped(store, "list_clusters", apply_late, after=True)
    run = recluster(wrapped, settings, namer=namer)
    assert run["mode"] == "incremental" and run["status"] == "succeeded" and wrapped.fired
    assert run["late_edits"] >= 1  # applied again after the switch: the kept catalogue lacked it
    _merged(store, home, fresh, into, source)


def test_an_edit_whose_process_died_before_applying_it_is_applied_by_the_next_run(live) -> None:
    store, settings, namer, tickets, home, _ = live
    cid = home[2]
    edit = {"edit_id": "edit-orphan", "type": "rename", "cluster_id": cid, "name": "Login trouble"}
    store.save_record(
        EDIT_KIND, edit["edit_id"], {**edit, "pinned": True, "created_at": "2026-12-02T00:00:00Z"}
    )
    run = recluster(store, settings, namer=namer)
    assert run["mode"] == "incremental" and run["late_edits"] == 1
    assert view(store, tickets[120].id)["cluster_name"] == "Login trouble"
    assert recluster(store, settings, namer=namer)["status"] == "skipped"  # and now nothing is left


def test_a_merge_made_while_the_copy_between_slots_runs_holds_in_both(live) -> None:
    store, settings, namer, tickets, home, fresh = live
    into, source = home[0], home[1]
    old_live = store.get_state()["slot"]

    def merge_now(ids, payload) -> bool:  # the after-switch copy into the slot that was live
        if not wrapped.fired and any(k.startswith(old_live + "_") for k in payload):
            merge_clusters(store, into, source)
            return True
        return False

    wrapped = _Wrapped(store, "set_payload_ids", merge_now)
    assert recluster(wrapped, settings, namer=namer)["status"] == "succeeded" and wrapped.fired
    _merged(store, home, fresh, into, source)
    touch(store, tickets[-1])
    # the next incremental run switches to the slot the copy wrote: it must not bring the source back
    assert recluster(store, settings, namer=namer)["status"] == "succeeded"
    _merged(store, home, fresh, into, source)


def test_edits_late_for_a_run_that_died_after_its_switch_are_applied_by_the_next(live) -> None:
    store, settings, namer, tickets, home, _ = live
    cid = home[0]

    def rename_while_writing(message: str) -> None:
        if message.startswith("write:"):
            rename_cluster(store, cid, "Refund requests")

    def die_in_catch_up(kind, *args, **kwargs) -> bool:
        if kind == EDIT_KIND:
            dying.calls += 1
            if dying.calls == 2:  # the first listing is the run's own; the second is its catch-up
                raise RuntimeError("killed after the switch")
        return False

    dying = _Wrapped(store, "list_records", die_in_catch_up)
    dying.calls = 0
    run = recluster(dying, settings, namer=namer, progress=rename_while_writing)
    assert run["status"] == "succeeded" and "killed" in run["after_switch_error"]
    touch(store, tickets[-1])
    again = recluster(store, settings, namer=namer)
    assert again["mode"] == "incremental" and again["late_edits"] >= 1
    assert view(store, tickets[0].id)["cluster_name"] == "Refund requests"


def test_a_merge_during_the_copy_of_a_run_that_died_there_is_applied_by_the_next(live) -> None:
    store, settings, namer, tickets, home, fresh = live
    into, source = home[0], home[1]
    old_live = store.get_state()["slot"]
    listings = []

    def merge_now(ids, payload) -> bool:  # the API merges while the copy into the old slot runs
        if not wrapped.fired and any(k.startswith(old_live + "_") for k in payload):
            merge_clusters(store, into, source)  # applied to the live run: applied_to is set
            return True
        return False

    def die_after_the_copy(kind, *args, **kwargs) -> bool:
        if kind == EDIT_KIND:
            listings.append(kind)
            if len(listings) == 3:  # the run's listing, its catch-up, then the one after the copy
                raise RuntimeError("killed after the copy")
        return False

    wrapped = _Wrapped(store, "set_payload_ids", merge_now, list_records=(die_after_the_copy, False))
    run = recluster(wrapped, settings, namer=namer)
    assert run["status"] == "succeeded" and wrapped.fired and "killed" in run["after_switch_error"]
    assert not run.get("after_switch_done")
    touch(store, tickets[-1])
    again = recluster(store, settings, namer=namer)  # switches to the slot the copy wrote
    assert again["mode"] == "incremental" and again["late_edits"] >= 1
    _merged(store, home, fresh, into, source)
