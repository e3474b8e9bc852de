"""A run fanned out over Celery parts (a chord on a real worker and a real Valkey broker)."""

from __future__ import annotations

import time

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from constellate.config import Settings
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.run_lock import LOCK_KEY
from constellate.store import edge_store
from tests.topics import topic_data
from tests.views import all_views
from worker import RECLUSTER_TASK, make_celery


def _filled(path, settings: Settings):
    store = edge_store(settings.model_copy(update={"data_dir": path}))
    store.ensure_collections(32)
    tickets, vectors, _ = topic_data(5, 120)
    store.upsert_tickets(tickets, vectors)
    return store


def _wait_for_run(store, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.get_run(run_id) or {}
        if run.get("status") in ("succeeded", "failed"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end: {store.get_run(run_id)}")


@pytest.mark.parametrize("parts", [2, 3])
def test_a_fanned_out_run_labels_exactly_like_one_process(tmp_path, redis_url, hash_embedder, parts) -> None:
    settings = Settings(data_dir=tmp_path / "one", min_cluster_size=20, recluster_page_size=64)
    namer = KeyBERTNamer(hash_embedder)
    single = _filled(tmp_path / "one", settings)
    fanned = _filled(tmp_path / "many", settings)
    try:
        alone = recluster(single, settings, namer=namer)
        many = settings.model_copy(update={"data_dir": tmp_path / "many", "recluster_parts": parts})
        app = make_celery(many, redis_url, store=fanned, namer=namer)
        with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30):
            sent = app.send_task(RECLUSTER_TASK).get(timeout=120)
            assert sent["status"] == "dispatched" and sent["parts"] == parts
            run = _wait_for_run(fanned, sent["run_id"])
        assert run["status"] == "succeeded", run
        assert run["parts"] == parts and len(run["part_seconds"]) == parts
        assert run["n_points"] == alone["n_points"] == 600 and run["written"] == 600
        assert fanned.get_state()["current_run"] == run["run_id"]
        assert fanned.get_state()["version"] == 2  # one claim and one switch: the run switched once
        one = {t: (v["cluster_id"], v["cluster_name"], v["is_outlier"]) for t, v in all_views(single).items()}
        two = {t: (v["cluster_id"], v["cluster_name"], v["is_outlier"]) for t, v in all_views(fanned).items()}
        assert one == two
    finally:
        single.close()
        fanned.close()


def test_a_fanned_out_incremental_run_labels_exactly_like_one_process(
    tmp_path, redis_url, hash_embedder
) -> None:
    from constellate.assign import CentroidAssigner

    settings = Settings(data_dir=tmp_path / "one", min_cluster_size=20, recluster_page_size=64)
    settings = settings.model_copy(update={"fit_sample_size": 400})  # the store outgrows the sample
    namer = KeyBERTNamer(hash_embedder)
    fresh, vectors, _ = topic_data(1, 60, seed=5, prefix="new", start=6)
    stores = {}
    for name in ("one", "many"):
        store = stores[name] = _filled(tmp_path / name, settings)
        assert recluster(store, settings, namer=namer)["mode"] == "full"
        _, guessed = CentroidAssigner(store).label(vectors)
        store.upsert_tickets(fresh, vectors, guessed)
    try:
        alone = recluster(stores["one"], settings, namer=namer)
        assert alone["mode"] == "incremental" and alone["born"] == 1 and alone["written"] == 60
        many = settings.model_copy(update={"data_dir": tmp_path / "many", "recluster_parts": 2})
        app = make_celery(many, redis_url, store=stores["many"], namer=namer)
        with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30):
            sent = app.send_task(RECLUSTER_TASK).get(timeout=120)
            run = _wait_for_run(stores["many"], sent["run_id"])
        assert run["status"] == "succeeded" and run["mode"] == "incremental", run
        assert run["n_read"] == alone["n_read"] and run["written"] == alone["written"]
        views = [
            {t: (v["cluster_id"], v["cluster_name"], v["is_outlier"]) for t, v in all_views(s).items()}
            for s in stores.values()
        ]
        assert views[0] == views[1]
    finally:
        for store in stores.values():
            store.close()


def test_a_part_that_fails_fails_the_whole_run(tmp_path, redis_url, hash_embedder, monkeypatch) -> None:
    import worker.tasks as tasks

    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=20, recluster_parts=2)
    store = _filled(tmp_path / "d", settings)
    real = tasks.label_range

    def broken(store_, plan, lease, page_size, start, stop, seed=0):
        if start is not None:  # the second range
            raise RuntimeError("disk full")
        return real(store_, plan, lease, page_size, start, stop, seed)

    monkeypatch.setattr(tasks, "label_range", broken)
    try:
        app = make_celery(settings, redis_url, store=store, namer=KeyBERTNamer(hash_embedder))
        with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30):
            sent = app.send_task(RECLUSTER_TASK).get(timeout=120)
            run = _wait_for_run(store, sent["run_id"])
            assert run["status"] == "failed" and "part" in run["error"]
            assert store.get_state().get("current_run") is None  # readers never saw a partial run
            monkeypatch.setattr(tasks, "label_range", real)
            # the abort task records the failure, then frees the lock: wait for the second step
            lock = redis.Redis.from_url(redis_url)
            deadline = time.monotonic() + 60
            while lock.exists(LOCK_KEY) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not lock.exists(LOCK_KEY)
            again = app.send_task(RECLUSTER_TASK).get(timeout=120)
            assert again["status"] == "dispatched"
            assert _wait_for_run(store, again["run_id"])["status"] == "succeeded"
    finally:
        store.close()
