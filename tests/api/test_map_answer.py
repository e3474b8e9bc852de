"""/map is built once per (run, edit clock, limit): the cached answer is the one the store gives, and
an edit or a new run makes the next request build it again."""

from __future__ import annotations

import threading
import time

import pytest
from flask import jsonify

from api.services import AnswerCache
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster


def _from_store(store, limit: int) -> dict:
    """The map answer computed directly from the store (what the route sent before it cached): each
    point with its cluster's topic in the live catalogue."""
    run_id = store.get_state()["current_run"]
    fields = ("ticket_id", "x", "y", "cluster_id", "is_outlier", "text")
    topics = {
        r.payload["cluster_id"]: r.payload.get("topic_id")
        for r in store.list_clusters(run_id, level="cluster")
    }
    points = [{k: r.get(k) for k in fields} for r in store.list_map(run_id, limit)]
    for point in points:
        point["topic_id"] = topics.get(point["cluster_id"])
    return {"run_id": run_id, "total": store.get_run(run_id)["map_points"], "points": points}


def test_the_cached_map_is_the_stored_one_and_built_once(app, client, api_store) -> None:
    store, _ = api_store
    answers = app.extensions["constellate"].answers
    first = client.get("/map?limit=100")
    second = client.get("/map?limit=100")
    assert first.status_code == second.status_code == 200
    assert first.mimetype == "application/json"
    assert first.get_json() == _from_store(store, 100)
    assert second.data == first.data and answers.builds == 1
    with app.test_request_context():  # byte for byte what jsonify sent before the cache
        assert first.data == jsonify(_from_store(store, 100)).get_data()
    whole = client.get("/map?limit=5000").get_json()  # another limit is another answer
    assert answers.builds == 2 and len(whole["points"]) == whole["total"] == 160
    assert whole == _from_store(store, 5000)


def test_an_edit_rebuilds_the_map(app, client, api_store) -> None:
    store, _ = api_store
    answers = app.extensions["constellate"].answers
    before = client.get("/map?limit=5000").get_json()
    clusters = client.get("/clusters").get_json()["clusters"]
    into, source = clusters[0]["cluster_id"], clusters[1]["cluster_id"]
    assert any(p["cluster_id"] == source for p in before["points"])
    assert client.post(f"/clusters/{into}/merge", json={"cluster_id": source}).status_code == 200
    after = client.get("/map?limit=5000").get_json()
    assert answers.builds == 2
    assert not any(p["cluster_id"] == source for p in after["points"])
    assert after == _from_store(store, 5000)
    flagged = next(p for p in after["points"] if p["is_outlier"])
    assert client.post(f"/tickets/{flagged['ticket_id']}/not-outlier").status_code == 200
    again = client.get("/map?limit=5000").get_json()
    assert next(p for p in again["points"] if p["ticket_id"] == flagged["ticket_id"])["is_outlier"] is False
    assert answers.builds == 3


def test_a_new_run_rebuilds_the_map(app, client, api_store, hash_embedder) -> None:
    store, settings = api_store
    answers = app.extensions["constellate"].answers
    before = client.get("/map?limit=5000").get_json()
    recluster(store, settings, namer=KeyBERTNamer(hash_embedder))
    after = client.get("/map?limit=5000").get_json()
    assert after["run_id"] == store.get_state()["current_run"] != before["run_id"]
    assert after == _from_store(store, 5000) and answers.builds == 2


def test_concurrent_requests_for_one_answer_build_it_once() -> None:
    cache = AnswerCache(size=2)
    started = threading.Event()

    def slow() -> bytes:
        started.set()
        time.sleep(0.2)
        return b"body"

    got: list[bytes] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", slow))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [b"body"] * 6 and cache.builds == 1
    for key in ("a", "b", "c"):  # the newest two are kept
        cache.get(key, lambda k=key: k.encode())
    assert cache.get("k", lambda: b"rebuilt") == b"rebuilt" and cache.builds == 5


def test_a_failed_build_is_not_cached() -> None:
    cache = AnswerCache()

    def broken() -> bytes:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        cache.get("k", broken)
    assert cache.get("k", lambda: b"ok") == b"ok" and cache.builds == 1
