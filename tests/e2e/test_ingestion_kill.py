"""The ingestion consumer SIGKILLed mid-batch and restarted loses no ticket and stores none twice."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from constellate.config import Settings
from constellate.datasets import load_banking77
from constellate.store import edge_store
from constellate.stream import STATS_KEY, publish, stream_lag
from constellate.tickets import Ticket
from tests.e2e.helpers import spawn, stop_process, wait_for

pytestmark = pytest.mark.slow


def test_consumer_killed_mid_batch_loses_nothing(tmp_path, redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    data_dir = tmp_path / "d"
    env = {
        "CONSTELLATE_REDIS_URL": redis_url,
        "CONSTELLATE_DATA_DIR": str(data_dir),
        "CONSTELLATE_INGEST_BATCH_SIZE": "64",
        "CONSTELLATE_INGEST_CLAIM_IDLE_MS": "1000",
    }
    texts = [item.text for item in load_banking77(["train"])[:3000]]
    publish(client, [Ticket(id=f"k{i}", text=t) for i, t in enumerate(texts)])

    first = spawn(["ingestion"], env, tmp_path / "first.log")
    stored_before_kill = wait_for(
        lambda: (n := int(client.hget(STATS_KEY, "tickets") or 0)) >= 300 and n,
        180,
        "the first batches",
        0.05,
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    lag = stream_lag(client)
    assert stored_before_kill < 3000 and lag["undelivered"] > 0
    assert lag["pending"] > 0  # a batch was read and not acknowledged: killed mid-batch

    second = spawn(["ingestion"], env, tmp_path / "second.log")
    restarted = time.monotonic()
    try:
        wait_for(
            lambda: (lag := stream_lag(client))["pending"] == 0 and lag["undelivered"] == 0,
            300,
            "the rest",
            0.2,
        )
        print(
            f"killed after {stored_before_kill} stored with {lag['pending']} pending; "
            f"the rest stored {time.monotonic() - restarted:.1f}s after the restart"
        )
    finally:
        assert stop_process(second) == 0
    time.sleep(0.1)
    store = edge_store(Settings(data_dir=data_dir))
    try:
        assert store.count() == 3000  # every ticket, once (ids are UUIDv5 of the ticket id)
        assert all(store.get_ticket(f"k{i}") is not None for i in (0, 1499, 2999))
    finally:
        store.close()
    assert stream_lag(client)["dead"] == 0
