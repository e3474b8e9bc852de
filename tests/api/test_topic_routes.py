"""The topic level through the API: catalogue by level, detail with parent and children, search by
topic, moving a cluster, renaming a topic, and POST /recluster's optional body."""

from __future__ import annotations

import base64
import json

import pytest
import redis

from api import create_app
from constellate.config import Settings
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from tests.topics import nested_data


@pytest.fixture
def nested_client(tmp_path, hash_embedder, redis_url):
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=15)
    store = edge_store(settings)
    store.ensure_collections(32)
    tickets, vectors, _, _ = nested_data()
    store.upsert_tickets(tickets, vectors)
    recluster(store, settings, namer=KeyBERTNamer(hash_embedder))
    app = create_app(settings, store=store, embedder=hash_embedder, redis_url=redis_url)
    yield app.test_client(), tickets
    store.close()


def _levels(client) -> tuple[dict[int, dict], dict[int, dict]]:
    clusters = client.get("/clusters").get_json()
    topics = client.get("/clusters?level=topic").get_json()
    assert clusters["level"] == "cluster" and topics["level"] == "topic"
    return (
        {c["cluster_id"]: c for c in clusters["clusters"]},
        {t["cluster_id"]: t for t in topics["clusters"]},
    )


def test_the_catalogue_by_level_and_the_detail_of_each(nested_client) -> None:
    client, _ = nested_client
    clusters, topics = _levels(client)
    assert len(clusters) == 9 and len(topics) == 3
    assert all(c["level"] == "cluster" and c["topic_id"] in topics for c in clusters.values())
    assert sorted(c for t in topics.values() for c in t["children"]) == sorted(clusters)
    sizes = [t["size"] for t in topics.values()]
    assert sizes == sorted(sizes, reverse=True)  # largest first
    tid = next(iter(topics))
    detail = client.get(f"/clusters/{tid}").get_json()
    assert detail["level"] == "topic" and detail["topic"] is None
    assert sorted(c["cluster_id"] for c in detail["clusters"]) == sorted(topics[tid]["children"])
    cid = topics[tid]["children"][0]
    one = client.get(f"/clusters/{cid}").get_json()
    assert one["level"] == "cluster" and one["topic"]["cluster_id"] == tid and one["clusters"] == []
    assert client.get("/clusters?level=bogus").status_code == 400


def test_search_by_topic_id_and_name(nested_client) -> None:
    client, tickets = nested_client
    clusters, topics = _levels(client)
    tid = next(iter(topics))
    for query in (f"topic_id={tid}", "topic_name=" + topics[tid]["name"].upper()):
        body = client.get(f"/search?q={tickets[0].text}&limit=50&{query}").get_json()
        assert body["topic_id"] == tid and len(body["hits"]) == 50
        assert {h["cluster_id"] for h in body["hits"]} <= set(topics[tid]["children"])
        assert all(h["topic_id"] == tid and h["topic_name"] == topics[tid]["name"] for h in body["hits"])
    inside = topics[tid]["children"][0]
    outside = next(c for c in clusters if c not in topics[tid]["children"])
    assert client.get(f"/search?q=x&topic_id={tid}&cluster_id={inside}").status_code == 200
    assert client.get(f"/search?q=x&topic_id={tid}&cluster_id={outside}").status_code == 409
    assert client.get(f"/search?q=x&topic_id={outside}").status_code == 404  # a cluster, not a topic
    assert client.get(f"/search?q=x&cluster_id={tid}").status_code == 404  # a topic, not a cluster
    assert client.get("/search?q=x&topic_name=nothing%20like%20it").status_code == 404
    other = next(t for t in topics if t != tid)
    assert client.get(f"/search?q=x&topic_id={tid}&topic_name={topics[other]['name']}").status_code == 409


def test_move_a_cluster_and_rename_a_topic(nested_client) -> None:
    client, tickets = nested_client
    clusters, topics = _levels(client)
    source, target = list(topics)[:2]
    mover = topics[source]["children"][0]
    resp = client.post(f"/clusters/{mover}/move", json={"topic_id": target})
    assert resp.status_code == 200 and resp.get_json()["type"] == "move"
    after_clusters, after = _levels(client)
    assert after_clusters[mover]["topic_id"] == target
    assert mover in after[target]["children"] and mover not in after[source]["children"]
    assert after[target]["size"] == topics[target]["size"] + clusters[mover]["size"]
    assert client.post(f"/clusters/{mover}/move", json={"topic_id": target}).status_code == 409  # already
    assert client.post(f"/clusters/{mover}/move", json={"topic_id": mover}).status_code == 409  # not a topic
    assert client.post(f"/clusters/{target}/move", json={"topic_id": source}).status_code == 409  # a topic
    assert client.post(f"/clusters/{mover}/move", json={"topic": 1}).status_code == 422
    assert client.post(f"/clusters/{mover}/move", json={"topic_id": 99999}).status_code == 404
    assert client.patch(f"/clusters/{target}", json={"name": "Account topics"}).status_code == 200
    ticket = next(t for t in tickets if client.get(f"/tickets/{t.id}").get_json()["cluster_id"] == mover)
    seen = client.get(f"/tickets/{ticket.id}").get_json()
    assert seen["topic_id"] == target and seen["topic_name"] == "Account topics"


def test_recluster_takes_an_optional_full_flag(nested_client, redis_url) -> None:
    client, _ = nested_client
    queue = redis.Redis.from_url(redis_url)
    assert client.post("/recluster").status_code == 202
    assert client.post("/recluster", json={"full": True}).status_code == 202
    bodies = [json.loads(base64.b64decode(json.loads(m)["body"])) for m in queue.lrange("celery", 0, -1)]
    assert sorted(json.dumps(b[1]) for b in bodies) == ['{"full": true}', "{}"]  # (args, kwargs, ...)
    assert client.post("/recluster", json={"full": "yes please"}).status_code == 422
    assert client.post("/recluster", json={"everything": True}).status_code == 422
    assert client.post("/recluster", data="not json", content_type="application/json").status_code == 400
    assert queue.llen("celery") == 2  # refused requests queued nothing
