"""Interleavings of a run with edits, ingestion, the CLI and a lost lease (issue 11).

Each test puts the other party's action at a chosen point of a run (the ``progress`` callback fires
as each stage starts) and then checks what must hold after the switch, whenever the action came.
"""

from __future__ import annotations

import numpy as np
import pytest

from constellate.assign import CentroidAssigner
from constellate.config import Settings
from constellate.edits import NOT_OUTLIER, mark_not_outlier, merge_clusters, rename_cluster, split_cluster
from constellate.ingest import ingest_tickets
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from constellate.tickets import Ticket
from tests.changes import touch
from tests.topics import topic_data
from tests.views import all_views, view

WRITE_STAGE = "write:"  # progress reports each stage as "<name>: <what>" when it starts


@pytest.fixture(params=["full", "incremental"])
def live(request, tmp_path, hash_embedder):
    """A labelled store; every interleaving is tried against full runs and against incremental ones."""
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=20, recluster_mode=request.param)
    store = edge_store(settings)
    store.ensure_collections(32)
    tickets, vectors, gold = topic_data(5, 60)
    store.upsert_tickets(tickets, vectors)
    namer = KeyBERTNamer(hash_embedder)
    assert recluster(store, settings, namer=namer)["status"] == "succeeded"
    if request.param == "incremental":  # something for the run to do (an unchanged store is skipped)
        fresh, fresh_vectors, _ = topic_data(1, 30, seed=5, prefix="new", start=6)
        store.upsert_tickets(fresh, fresh_vectors, CentroidAssigner(store).label(fresh_vectors)[1])
    yield store, settings, namer, tickets, gold
    store.close()


def during(stage: str, action):
    """A progress callback that runs ``action`` once, when ``stage`` starts."""
    fired: list[object] = []

    def progress(message: str) -> None:
        if message.startswith(stage) and not fired:
            fired.append(action())

    progress.fired = fired  # type: ignore[attr-defined]
    return progress


def catalogue(store) -> dict[int, dict]:
    return {r.payload["cluster_id"]: r.payload for r in store.list_clusters(store.get_state()["current_run"])}


def cluster_of(store, tickets, gold, topic: int) -> int:
    ids = {view(store, t.id)["cluster_id"] for t, g in zip(tickets, gold, strict=True) if g == topic}
    assert len(ids) == 1, ids
    return ids.pop()


def every_label_is_live(store) -> None:
    """After a switch: every stored ticket has a live label naming a cluster of the live catalogue."""
    live_ids = set(catalogue(store))
    views = all_views(store)
    for ticket_id, v in views.items():
        assert v["cluster_id"] in live_ids, (ticket_id, v["cluster_id"], sorted(live_ids))
    assert len(views) == store.count()


def test_a_rename_made_while_a_run_writes_is_in_force_after_its_switch(live) -> None:
    store, settings, namer, tickets, gold = live
    cid = cluster_of(store, tickets, gold, 0)
    progress = during(WRITE_STAGE, lambda: rename_cluster(store, cid, "Refund requests"))
    assert recluster(store, settings, namer=namer, progress=progress)["status"] == "succeeded"
    assert progress.fired
    for _ in range(2):  # in force after this switch and after later ones
        entry = catalogue(store)[cid]
        assert entry["name"] == "Refund requests" and entry["pinned"] is True
        assert view(store, tickets[0].id)["cluster_name"] == "Refund requests"
        touch(store, tickets[-1])
        assert recluster(store, settings, namer=namer)["status"] == "succeeded"


def test_a_merge_made_while_a_run_writes_is_in_force_after_its_switch(live) -> None:
    store, settings, namer, tickets, gold = live
    into, source = cluster_of(store, tickets, gold, 0), cluster_of(store, tickets, gold, 1)
    progress = during(WRITE_STAGE, lambda: merge_clusters(store, into, source))
    assert recluster(store, settings, namer=namer, progress=progress)["status"] == "succeeded"
    assert progress.fired
    assert source not in catalogue(store)
    assert {view(store, t.id)["cluster_id"] for t, g in zip(tickets, gold, strict=True) if g in (0, 1)} == {
        into
    }
    every_label_is_live(store)


def test_a_split_made_while_a_run_writes_is_in_force_after_its_switch(live) -> None:
    store, settings, namer, tickets, gold = live
    source = cluster_of(store, tickets, gold, 2)
    picked = [t.id for t, g in zip(tickets, gold, strict=True) if g == 2][:5]
    progress = during(WRITE_STAGE, lambda: split_cluster(store, source, picked, "VIP refunds"))
    assert recluster(store, settings, namer=namer, progress=progress)["status"] == "succeeded"
    new_id = progress.fired[0]["cluster_id"]
    assert {view(store, t)["cluster_id"] for t in picked} == {new_id}
    assert catalogue(store)[new_id]["name"] == "VIP refunds"
    every_label_is_live(store)


def test_a_not_outlier_made_while_a_run_writes_is_in_force_after_its_switch(live) -> None:
    store, settings, namer, tickets, _ = live
    flagged = [t.id for t in tickets if view(store, t.id)["is_outlier"]]
    worst = max(flagged, key=lambda t: view(store, t)["outlier_score"])  # the run flags it again
    progress = during(WRITE_STAGE, lambda: mark_not_outlier(store, worst))
    assert recluster(store, settings, namer=namer, progress=progress)["status"] == "succeeded"
    assert progress.fired
    assert view(store, worst)["is_outlier"] is False


def _fewer_clusters(settings: Settings) -> Settings:
    """KMeans with k=3 on the five topics: the run merges clusters, so old ids retire (a full run:
    in auto mode the changed settings would make it one too)."""
    return settings.model_copy(update={"algorithm": "kmeans", "n_clusters": 3, "recluster_mode": "full"})


def test_tickets_ingested_while_a_run_writes_never_name_a_retired_cluster(live, hash_embedder) -> None:
    store, settings, namer, _, _ = live
    fresh, _, _ = topic_data(5, 8, seed=7, prefix="late")
    assigner = CentroidAssigner(store)
    before = set(catalogue(store))
    progress = during(WRITE_STAGE, lambda: ingest_tickets(fresh, store, hash_embedder, labeller=assigner))
    run = recluster(store, _fewer_clusters(settings), namer=namer, progress=progress)
    assert run["status"] == "succeeded" and progress.fired
    assert before - set(catalogue(store))  # the run did retire ids
    every_label_is_live(store)


class _SwitchBeforeUpsert:
    """A store whose first ticket upsert waits for a whole run to switch: the labels the ingest path
    computed before it now name the previous run's clusters."""

    def __init__(self, store, run) -> None:
        self._store, self._run = store, run

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def upsert_tickets(self, *args, **kwargs):
        if self._run is not None:
            run, self._run = self._run, None
            assert run()["status"] == "succeeded"
        return self._store.upsert_tickets(*args, **kwargs)


def test_tickets_labelled_before_a_switch_and_stored_after_it_name_live_clusters(live, hash_embedder) -> None:
    store, settings, namer, _, _ = live
    fresh, _, _ = topic_data(5, 8, seed=9, prefix="edge")
    before = set(catalogue(store))
    racing = _SwitchBeforeUpsert(store, lambda: recluster(store, _fewer_clusters(settings), namer=namer))
    ingest_tickets(fresh, racing, hash_embedder, labeller=CentroidAssigner(racing))
    assert before - set(catalogue(store))
    every_label_is_live(store)


def test_edits_past_the_first_thousand_are_still_replayed(live) -> None:
    store, settings, namer, tickets, gold = live
    into, source = cluster_of(store, tickets, gold, 0), cluster_of(store, tickets, gold, 1)
    merge_clusters(store, into, source)  # the oldest edit
    other = cluster_of(store, tickets, gold, 3)
    for i in range(1000):
        rename_cluster(store, other, f"name {i}")
    assert recluster(store, settings, namer=namer)["status"] == "succeeded"
    assert source not in catalogue(store)
    assert catalogue(store)[other]["name"] == "name 999"
    assert {view(store, t.id)["cluster_id"] for t, g in zip(tickets, gold, strict=True) if g in (0, 1)} == {
        into
    }


def test_reingesting_a_ticket_keeps_what_a_human_said_about_it(live, hash_embedder) -> None:
    store, settings, namer, tickets, _ = live
    flagged = [t for t in tickets if view(store, t.id)["is_outlier"]]
    ticket = max(flagged, key=lambda t: view(store, t.id)["outlier_score"])
    mark_not_outlier(store, ticket.id)
    stored = store.count()
    # the same id again, once unchanged and once with new text: an update, not a new ticket
    for text in (ticket.text, ticket.text + " still waiting"):
        again = Ticket(id=ticket.id, text=text)
        ingest_tickets([again], store, hash_embedder, labeller=CentroidAssigner(store))
        payload = store.get_ticket(ticket.id).payload
        assert payload[NOT_OUTLIER] == "no"
        assert payload["text"] == text
        assert view(store, ticket.id)["is_outlier"] is False
    assert store.count() == stored
    assert recluster(store, settings, namer=namer)["status"] == "succeeded"
    assert view(store, ticket.id)["is_outlier"] is False


def test_the_vectors_of_a_reingested_ticket_are_replaced(live, hash_embedder) -> None:
    store, _, _, tickets, _ = live
    ticket = tickets[0]
    ingest_tickets([Ticket(id=ticket.id, text="a completely different text")], store, hash_embedder)
    stored = store.get_points([store.get_ticket(ticket.id).id], with_vector=True)[0].vector
    assert np.allclose(stored, hash_embedder.embed(["a completely different text"])[0], atol=1e-5)
