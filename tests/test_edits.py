"""Human edits: applied at once, and still true after two more reclusters."""

from __future__ import annotations

import pytest

from constellate.config import Settings
from constellate.edits import (
    edits_for,
    list_edits,
    mark_not_outlier,
    merge_clusters,
    rename_cluster,
    split_cluster,
)
from constellate.exceptions import InputError, NotFound
from constellate.ids import next_free_id
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from tests.topics import topic_data
from tests.views import view


@pytest.fixture
def live(tmp_path, hash_embedder):
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=20)
    store = edge_store(settings)
    store.ensure_collections(32)
    tickets, vectors, gold = topic_data(5, 60)
    store.upsert_tickets(tickets, vectors)
    namer = KeyBERTNamer(hash_embedder)
    recluster(store, settings, namer=namer)
    yield store, settings, namer, tickets, gold
    store.close()


def _view(store, ticket_id: str) -> dict:
    return view(store, ticket_id)


def _catalogue(store) -> dict[int, dict]:
    run = store.get_state()["current_run"]
    return {r.payload["cluster_id"]: r.payload for r in store.list_clusters(run)}


def _cluster_of_topic(store, tickets, gold, topic: int) -> int:
    ids = {_view(store, t.id)["cluster_id"] for t, g in zip(tickets, gold, strict=True) if g == topic}
    assert len(ids) == 1
    return ids.pop()


def _two_more_runs(store, settings, namer) -> None:
    for _ in range(2):
        assert recluster(store, settings, namer=namer)["status"] == "succeeded"


def test_rename_pins_the_name_through_two_runs(live) -> None:
    store, settings, namer, tickets, gold = live
    cid = _cluster_of_topic(store, tickets, gold, 0)
    edit = rename_cluster(store, cid, "  Refund requests  ")
    assert _catalogue(store)[cid]["name"] == "Refund requests" and _catalogue(store)[cid]["pinned"]
    assert _view(store, tickets[0].id)["cluster_name"] == "Refund requests"  # tickets relabelled at once
    _two_more_runs(store, settings, namer)
    assert _cluster_of_topic(store, tickets, gold, 0) == cid
    assert _catalogue(store)[cid]["name"] == "Refund requests"
    assert edits_for(store, cid) == [edit]


def test_a_merged_pair_stays_merged_through_two_runs(live) -> None:
    store, settings, namer, tickets, gold = live
    a, b = (_cluster_of_topic(store, tickets, gold, t) for t in (0, 1))
    size_a, size_b = _catalogue(store)[a]["size"], _catalogue(store)[b]["size"]
    merge_clusters(store, a, b)
    catalogue = _catalogue(store)
    assert b not in catalogue and catalogue[a]["size"] == size_a + size_b
    assert {_view(store, t.id)["cluster_id"] for t, g in zip(tickets, gold, strict=True) if g in (0, 1)} == {
        a
    }
    _two_more_runs(store, settings, namer)
    members = {_view(store, t.id)["cluster_id"] for t, g in zip(tickets, gold, strict=True) if g in (0, 1)}
    assert members == {a}
    catalogue = _catalogue(store)
    assert b not in catalogue and catalogue[a]["size"] == 120 and len(catalogue) == 4
    events = store.get_run(store.get_state()["current_run"])["events"]
    assert any(e.get("by") == "edit" and e["event"] == "merged" and e["into"] == a for e in events)
    assert [e["type"] for e in edits_for(store, b)] == ["merge"]


def test_split_off_tickets_keep_their_cluster_through_two_runs(live) -> None:
    store, settings, namer, tickets, gold = live
    source = _cluster_of_topic(store, tickets, gold, 2)
    chosen = [t.id for t, g in zip(tickets, gold, strict=True) if g == 2][:12]
    edit = split_cluster(store, source, chosen, "Password resets from the app")
    new = edit["cluster_id"]
    assert new not in (source,) and _catalogue(store)[new]["size"] == 12
    assert _catalogue(store)[source]["size"] == 48
    _two_more_runs(store, settings, namer)
    assert {_view(store, t)["cluster_id"] for t in chosen} == {new}
    catalogue = _catalogue(store)
    assert catalogue[new]["name"] == "Password resets from the app" and catalogue[new]["size"] == 12
    rest = {
        _view(store, t.id)["cluster_id"]
        for t, g in zip(tickets, gold, strict=True)
        if g == 2 and t.id not in chosen
    }
    assert rest == {source}
    assert store.get_state()["next_cluster_id"] > new  # the id is never handed out again
    assert next_free_id(store) > new


def test_not_an_outlier_survives_two_runs(live) -> None:
    store, settings, namer, tickets, _ = live
    flagged = [t.id for t in tickets if _view(store, t.id)["is_outlier"]]
    assert flagged
    mark_not_outlier(store, flagged[0])
    assert _view(store, flagged[0])["is_outlier"] is False
    _two_more_runs(store, settings, namer)
    assert _view(store, flagged[0])["is_outlier"] is False
    assert all(_view(store, t)["is_outlier"] for t in flagged[1:3])  # only the one a human cleared


def test_bad_edits_are_refused_and_change_nothing(live) -> None:
    store, _, _, tickets, gold = live
    a = _cluster_of_topic(store, tickets, gold, 0)
    other = [t.id for t, g in zip(tickets, gold, strict=True) if g == 1][:2]
    before = _catalogue(store)
    with pytest.raises(NotFound):
        rename_cluster(store, 999, "x")
    with pytest.raises(InputError):
        rename_cluster(store, a, "   ")
    with pytest.raises(InputError):
        merge_clusters(store, a, a)
    with pytest.raises(NotFound):
        merge_clusters(store, a, 999)
    with pytest.raises(InputError, match="not in cluster"):
        split_cluster(store, a, other, "x")
    with pytest.raises(NotFound):
        split_cluster(store, a, ["no-such-ticket"], "x")
    with pytest.raises(InputError, match="leave tickets behind"):
        split_cluster(store, a, [t.id for t, g in zip(tickets, gold, strict=True) if g == 0], "x")
    with pytest.raises(NotFound):
        mark_not_outlier(store, "no-such-ticket")
    assert _catalogue(store) == before and list_edits(store) == []


def test_ingest_labels_use_the_edited_catalogue_at_once(live, hash_embedder) -> None:
    from constellate.assign import CentroidAssigner
    from constellate.ingest import ingest_tickets
    from constellate.tickets import Ticket

    store, _, _, tickets, gold = live
    assigner = CentroidAssigner(store)
    cid = _cluster_of_topic(store, tickets, gold, 0)
    ingest_tickets([Ticket(id="late-0", text=tickets[0].text)], store, hash_embedder, labeller=assigner)
    rename_cluster(store, cid, "Money back")
    ingest_tickets([Ticket(id="late-1", text=tickets[0].text)], store, hash_embedder, labeller=assigner)
    assert _view(store, "late-1")["cluster_name"] == "Money back"
