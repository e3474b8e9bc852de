"""The recluster task through a real Celery worker (start_worker) on a real Valkey broker."""

from __future__ import annotations

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from constellate.config import Settings
from constellate.naming import KeyBERTNamer
from constellate.run_lock import RunLock
from constellate.store import edge_store
from tests.topics import topic_data
from worker import MAYBE_RECLUSTER_TASK, RECLUSTER_TASK, make_celery


@pytest.fixture
def app_and_store(tmp_path, redis_url, hash_embedder):
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=20, recluster_min_new_tickets=50)
    store = edge_store(settings)
    store.ensure_collections(32)
    tickets, vectors, _ = topic_data(4, 50)
    store.upsert_tickets(tickets, vectors)
    app = make_celery(settings, redis_url, store=store, namer=KeyBERTNamer(hash_embedder))
    yield app, store, settings
    store.close()


def test_make_celery_sets_reliable_delivery(app_and_store) -> None:
    app, _, settings = app_and_store
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.broker_transport_options["visibility_timeout"] == settings.recluster_max_seconds
    assert conf.broker_transport_options["unacked_restore_throttle"] == 1
    assert conf.beat_schedule["recluster-when-new-tickets"]["task"] == MAYBE_RECLUSTER_TASK


def test_recluster_task_runs_on_a_real_worker(app_and_store) -> None:
    app, store, _ = app_and_store
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        result = app.send_task(RECLUSTER_TASK).get(timeout=120)
    assert result["status"] == "succeeded", result
    assert result["n_points"] == 200 and result["n_clusters"] == 4
    assert store.get_state()["current_run"] == result["run_id"]


def test_a_second_trigger_is_skipped_while_a_run_holds_the_lock(app_and_store, redis_url) -> None:
    app, store, _ = app_and_store
    holder = RunLock(redis.Redis.from_url(redis_url), timeout=60)
    assert holder.acquire()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
            result = app.send_task(RECLUSTER_TASK).get(timeout=60)
        assert result["status"] == "skipped"
        assert holder.run_id in result["reason"]
        assert store.get_state() == {}
    finally:
        holder.release()
    assert RunLock(redis.Redis.from_url(redis_url), timeout=60).acquire()  # released, free again


def test_beat_trigger_needs_enough_new_tickets(app_and_store) -> None:
    app, store, _ = app_and_store
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        first = app.send_task(MAYBE_RECLUSTER_TASK).get(timeout=120)  # no run yet: runs
        again = app.send_task(MAYBE_RECLUSTER_TASK).get(timeout=60)
        fresh, vectors, _ = topic_data(1, 50, seed=9, prefix="new", start=5)
        store.upsert_tickets(fresh, vectors)
        third = app.send_task(MAYBE_RECLUSTER_TASK).get(timeout=120)
    assert first["status"] == "succeeded"
    assert again == {"status": "skipped", "reason": "0 new tickets since the last run; 50 needed"}
    assert third["status"] == "succeeded" and third["n_points"] == 250
