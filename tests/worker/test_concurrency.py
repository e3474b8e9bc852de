"""Concurrency: reclusters while tickets stream in, and triggers that arrive together."""

from __future__ import annotations

import itertools
import threading

import pytest
from celery.contrib.testing.worker import start_worker

from constellate.assign import CentroidAssigner
from constellate.config import Settings
from constellate.ingest import ingest_tickets
from constellate.labels import slot_field
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from constellate.store.base import Filter, IsEmpty, Match
from tests.topics import topic_data
from worker import RECLUSTER_TASK, make_celery


@pytest.fixture
def live(tmp_path, hash_embedder):
    settings = Settings(
        data_dir=tmp_path / "d", min_cluster_size=20, umap_min_points=100_000
    )  # PCA: fast runs
    store = edge_store(settings)
    store.ensure_collections(hash_embedder.dim)
    tickets, vectors, _ = topic_data(4, 100)
    store.upsert_tickets(tickets, vectors)
    recluster(store, settings, namer=KeyBERTNamer(hash_embedder))
    yield store, settings
    store.close()


def _unlabelled(store) -> int:
    slot = store.get_state()["slot"]
    return store.count(Filter(must=[IsEmpty(slot_field(slot, "cluster_id"))]))


def test_tickets_streaming_in_during_runs_are_never_left_unlabelled(live, hash_embedder) -> None:
    store, settings = live
    namer = KeyBERTNamer(hash_embedder)
    fresh, _, _ = topic_data(4, 150, seed=3, prefix="late")
    assigner = CentroidAssigner(store)
    stop = threading.Event()
    fed: list[int] = []

    def feed() -> None:  # the ingestion side: small batches, labelled at once, as fast as it can
        for start in range(0, len(fresh), 10):
            ingest_tickets(fresh[start : start + 10], store, hash_embedder, labeller=assigner)
            fed.append(start + 10)
            if stop.wait(0.1):  # a steady trickle, spread over several runs
                return

    feeder = threading.Thread(target=feed)
    feeder.start()
    runs = []
    try:
        while feeder.is_alive() and len(runs) < 20:
            runs.append(recluster(store, settings, namer=namer))
            assert _unlabelled(store) == 0  # after every switch, every stored ticket has a live label
    except BaseException:
        stop.set()  # only a failure cuts the trickle short: the count below expects every ticket
        raise
    finally:
        feeder.join()
    assert fed[-1] == len(fresh)
    assert all(r["status"] == "succeeded" for r in runs)
    during = [r for r in runs if r["n_points"] < 400 + len(fresh)]
    assert len(during) >= 2  # several runs happened while tickets arrived
    assert _unlabelled(store) == 0
    last = recluster(store, settings, namer=namer)
    assert last["n_points"] == store.count() == 400 + len(fresh)  # the next run takes every one
    slot = store.get_state()["slot"]
    # a run's label stores no assigned_by, a guess made at ingest stores "ingest": none is left
    guessed = store.count(Filter(must=[Match(slot_field(slot, "assigned_by"), "ingest")]))
    assert guessed == 0 and _unlabelled(store) == 0


def test_two_triggers_at_once_never_overlap(live, redis_url, hash_embedder) -> None:
    store, settings = live
    app = make_celery(settings, redis_url, store=store, namer=KeyBERTNamer(hash_embedder))
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30):
        pending = [app.send_task(RECLUSTER_TASK) for _ in range(2)]
        results = [p.get(timeout=120) for p in pending]
    statuses = sorted(r["status"] for r in results)
    assert statuses == ["skipped", "succeeded"], results
    skipped = next(r for r in results if r["status"] == "skipped")
    winner = next(r for r in results if r["status"] == "succeeded")
    assert winner["run_id"] in skipped["reason"]
    spans = sorted((r["started_at"], r.get("finished_at") or "") for r in store.list_runs())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no two runs overlap
