"""A fanned-out run whose worker is SIGKILLed mid-part: the part is redelivered, the run switches once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from constellate.config import Settings
from constellate.datasets import load_banking77
from constellate.ingest import ingest_tickets
from constellate.labels import slot_field
from constellate.store import Filter, IsEmpty, Match, edge_store
from constellate.tickets import Ticket
from tests.e2e.helpers import stop_process, wait_for
from worker import RECLUSTER_TASK

pytestmark = pytest.mark.slow


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "--pool",
            "threads",
            "-c",
            "2",
            "-l",
            "INFO",
        ],
        env=full,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_a_part_whose_worker_dies_is_redelivered_and_the_run_switches_once(
    tmp_path: Path, redis_url: str, real_embedder
) -> None:
    data = tmp_path / "d"
    texts = [item.text for item in load_banking77()]
    store = edge_store(Settings(data_dir=data))
    ingest_tickets([Ticket(id=f"b{i}", text=t) for i, t in enumerate(texts)], store, real_embedder)
    store.close()
    env = {
        "CONSTELLATE_DATA_DIR": str(data),
        "CONSTELLATE_REDIS_URL": redis_url,
        "CONSTELLATE_RECLUSTER_PARTS": "2",
        "CONSTELLATE_RECLUSTER_PAGE_SIZE": "16",  # many small pages: the parts take a while
        "CONSTELLATE_RECLUSTER_MAX_SECONDS": "60",  # a killed part comes back after 60 s; the trigger (~30 s loaded) is not redelivered while it runs
        "CONSTELLATE_UMAP_MIN_POINTS": "1000000",  # PCA: no numba compile in the worker
        "CONSTELLATE_MAP_POINTS": "100",
    }
    first_log, second_log = tmp_path / "worker1.log", tmp_path / "worker2.log"
    first = _worker(env, first_log)
    client = Celery("test", broker=redis_url, backend=redis_url, set_as_current=False)
    second = None
    try:
        sent = client.send_task(RECLUSTER_TASK).get(timeout=300)
        assert sent["status"] == "dispatched", sent
        run_id = sent["run_id"]
        # both parts running, neither done: kill the whole worker
        wait_for(lambda: first_log.read_text().count("recluster_part[") >= 2, 120, "both parts to start")
        assert redis.Redis.from_url(redis_url).hlen(f"constellate:run:{run_id}:parts") == 0
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        killed_at = time.monotonic()
        second = _worker(env, second_log)
        finished = client.AsyncResult(sent["finish_task_id"]).get(timeout=600)
        redelivered_after = time.monotonic() - killed_at
        assert finished["status"] == "succeeded" and finished["run_id"] == run_id
        assert second_log.read_text().count("recluster_part[") >= 1  # the killed part came back here
    finally:
        for proc in (first, second):
            stop_process(proc)
    store = edge_store(Settings(data_dir=data))
    try:
        state = store.get_state()
        assert state["current_run"] == run_id and state["version"] == 2  # claimed once, switched once
        run = store.get_run(run_id)
        assert run["status"] == "succeeded" and run["parts"] == 2 and run["n_points"] == len(texts)
        assert len(store.list_runs()) == 1
        # every ticket labelled, each with a cluster of this run (a first run's labels name no run)
        key = slot_field(state["slot"], "cluster_id")
        assert store.count(Filter(must=(IsEmpty(key),))) == 0 and store.count() == len(texts)
        guessed = Filter(must=(Match(slot_field(state["slot"], "assigned_by"), "ingest"),))
        assert store.count(guessed) == 0  # written by the parts, none left to the after-switch repair
        used = set(store.facet(key))
        assert used and used <= {int(r.payload["cluster_id"]) for r in store.list_clusters(run_id)}
    finally:
        store.close()
    print(f"\nkilled mid-part; run switched {redelivered_after:.1f} s after the kill")
