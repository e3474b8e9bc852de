"""The topic level of a run: clusters grouped into topics with stable ids, names, edits, incremental runs."""

from __future__ import annotations

import pytest
from sklearn.metrics import adjusted_rand_score

from constellate.assign import CentroidAssigner
from constellate.config import Settings
from constellate.edits import merge_clusters, move_cluster, rename_cluster
from constellate.exceptions import InputError
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from tests.changes import touch
from tests.topics import nested_data
from tests.views import all_views


@pytest.fixture(params=["full", "incremental"])
def nested(request, tmp_path, hash_embedder):
    """9 clusters in 3 topics, labelled once; later runs are full or incremental."""
    settings = Settings(
        data_dir=tmp_path / "d", min_cluster_size=15, fit_sample_size=300, recluster_mode=request.param
    )
    store = edge_store(settings)
    store.ensure_collections(32)
    tickets, vectors, gold, gold_topic = nested_data()
    store.upsert_tickets(tickets, vectors)
    namer = KeyBERTNamer(hash_embedder)
    first = recluster(store, settings, namer=namer)
    assert first["status"] == "succeeded" and first["mode"] == "full"
    yield store, settings, namer, tickets, gold, gold_topic
    store.close()


def _levels(store) -> tuple[dict[int, dict], dict[int, dict]]:
    run = store.get_state()["current_run"]
    return (
        {r.payload["cluster_id"]: r.payload for r in store.list_clusters(run)},
        {r.payload["cluster_id"]: r.payload for r in store.list_clusters(run, level="topic")},
    )


def test_a_run_groups_its_clusters_into_named_topics(nested) -> None:
    store, _, _, tickets, gold, gold_topic = nested
    clusters, topics = _levels(store)
    assert len(clusters) == 9 and len(topics) == 3
    views = all_views(store)
    found = [views[t.id] for t in tickets]
    assert adjusted_rand_score(gold, [v["cluster_id"] for v in found]) == 1.0
    assert adjusted_rand_score(gold_topic, [v["topic_id"] for v in found]) == 1.0
    for v in found:
        assert v["topic_name"] == topics[v["topic_id"]]["name"]
        assert clusters[v["cluster_id"]]["topic_id"] == v["topic_id"]
    for tid, topic in topics.items():
        assert sorted(topic["children"]) == sorted(c for c, e in clusters.items() if e["topic_id"] == tid)
        assert topic["size"] == sum(clusters[c]["size"] for c in topic["children"]) == 120
        assert topic["keywords"] and topic["name"] not in {c["name"] for c in clusters.values()}
    assert len({t["name"] for t in topics.values()}) == 3
    assert set(topics).isdisjoint(clusters)  # one id space for both levels


def test_topic_ids_are_stable_across_runs(nested) -> None:
    store, settings, namer, tickets, *_ = nested
    _, before = _levels(store)
    for _ in range(2):
        touch(store, tickets[-1])  # or an incremental run has nothing to do and is skipped
        run = recluster(store, settings, namer=namer)
        assert run["status"] == "succeeded" and run["n_topics"] == 3
        _, after = _levels(store)
        assert {t: sorted(e["children"]) for t, e in after.items()} == {
            t: sorted(e["children"]) for t, e in before.items()
        }
        assert {t: e["name"] for t, e in after.items()} == {t: e["name"] for t, e in before.items()}
    if settings.recluster_mode == "full":
        continued = [e for e in run["events"] if e.get("level") == "topic" and e["event"] == "continued"]
        assert sorted(e["cluster_id"] for e in continued) == sorted(before)


def test_a_topic_rename_and_a_move_survive_two_runs(nested) -> None:
    store, settings, namer, tickets, *_ = nested
    clusters, topics = _levels(store)
    first, second = sorted(topics)[:2]
    mover = topics[first]["children"][0]
    rename_cluster(store, second, "Card and payment issues")
    move_cluster(store, mover, second)
    for _ in range(2):
        clusters, topics = _levels(store)
        assert topics[second]["name"] == "Card and payment issues" and topics[second]["pinned"]
        assert clusters[mover]["topic_id"] == second
        assert mover in topics[second]["children"] and mover not in topics[first]["children"]
        assert topics[second]["size"] == sum(clusters[c]["size"] for c in topics[second]["children"])
        touch(store, tickets[-1])
        assert recluster(store, settings, namer=namer)["status"] == "succeeded"


def test_edits_check_the_level(nested) -> None:
    store, *_ = nested
    clusters, topics = _levels(store)
    cluster, other, topic = min(clusters), max(clusters), min(topics)
    with pytest.raises(InputError, match="is a topic"):
        merge_clusters(store, topic, cluster)
    with pytest.raises(InputError, match="is a cluster"):
        move_cluster(store, cluster, other)  # a cluster is not a topic to move into


def test_a_born_cluster_joins_the_nearest_topic(tmp_path, hash_embedder) -> None:
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=15, fit_sample_size=300)
    store = edge_store(settings)
    try:
        store.ensure_collections(32)
        tickets, vectors, _, _ = nested_data()
        store.upsert_tickets(tickets, vectors)
        namer = KeyBERTNamer(hash_embedder)
        recluster(store, settings, namer=namer)
        # a tenth cluster next to cluster 0's topic: its tickets guessed at ingest
        fresh, fresh_vectors, _, _ = nested_data(clusters=4, per_cluster=40, prefix="late")
        keep = [i for i, t in enumerate(fresh) if t.id.startswith("late3-")]
        fresh, fresh_vectors = [fresh[i] for i in keep], fresh_vectors[keep]
        _, guessed = CentroidAssigner(store).label(fresh_vectors)
        store.upsert_tickets(fresh, fresh_vectors, guessed)
        run = recluster(store, settings, namer=namer)
        assert run["mode"] == "incremental" and run["born"] == 1
        clusters, topics = _levels(store)
        born = next(e["cluster_id"] for e in run["events"] if e["event"] == "born")
        views = all_views(store)
        assert {views[t.id]["cluster_id"] for t in fresh} == {born}
        zero = views[tickets[0].id]["topic_id"]  # cluster 0's topic
        assert clusters[born]["topic_id"] == zero and born in topics[zero]["children"]
        assert clusters[born]["name"] not in {t["name"] for t in topics.values()}  # named apart from topics
    finally:
        store.close()
