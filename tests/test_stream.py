"""The ticket stream against a real Valkey: micro-batches, acks after upsert, redelivery, dead letters."""

from __future__ import annotations

import contextlib
import time

import pytest
import redis

from constellate.assign import CentroidAssigner
from constellate.config import Settings
from constellate.pipeline import recluster
from constellate.store import edge_store
from constellate.stream import DEAD_KEY, STREAM_KEY, ConsumerConfig, StreamConsumer, publish, stream_lag
from constellate.tickets import Ticket
from tests.topics import topic_data
from tests.views import view


@pytest.fixture
def client(redis_url):
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def store(tmp_path):
    s = edge_store(Settings(data_dir=tmp_path / "d"))
    yield s
    s.close()


def _drain(consumer: StreamConsumer, client, rounds: int = 50) -> None:
    for _ in range(rounds):
        consumer.poll()
        lag = stream_lag(client)
        if lag["undelivered"] == 0 and lag["pending"] == 0:
            return
    raise AssertionError(f"stream not drained: {stream_lag(client)}")


def test_published_tickets_are_stored_once_and_acked(client, store, hash_embedder) -> None:
    consumer = StreamConsumer(client, store, hash_embedder, config=ConsumerConfig(batch_size=16, block_ms=50))
    consumer.ensure_group()
    tickets = [Ticket(id=f"s{i}", text=f"refund please order {i}") for i in range(100)]
    publish(client, tickets)
    publish(client, tickets[:10])  # the same ids again: an update, not a duplicate
    _drain(consumer, client)
    assert store.count() == 100
    assert stream_lag(client) == {"length": 110, "undelivered": 0, "pending": 0, "dead": 0}


def test_a_bad_entry_is_dead_lettered_with_its_reason(client, store, hash_embedder) -> None:
    consumer = StreamConsumer(client, store, hash_embedder, config=ConsumerConfig(block_ms=50))
    consumer.ensure_group()
    publish(client, [Ticket(id="ok", text="fine")])
    client.xadd(STREAM_KEY, {"ticket": "{not json"})
    client.xadd(STREAM_KEY, {"ticket": '{"id": "e", "text": "   "}'})
    _drain(consumer, client)
    assert store.count() == 1
    dead = client.xrange(DEAD_KEY)
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert len(reasons) == 2 and all(r.startswith("bad entry") for r in reasons)
    assert "empty text" in reasons[1]


class _FlakyStore:
    """Fails the first ``failures`` upserts, as if the process died before writing."""

    def __init__(self, store, failures: int) -> None:
        self._store = store
        self.failures = failures

    def upsert_tickets(self, *args, **kwargs):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("store unavailable")
        return self._store.upsert_tickets(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_failed_batch_is_redelivered_and_stored_exactly_once(client, store, hash_embedder) -> None:
    flaky = _FlakyStore(store, failures=1)
    cfg = ConsumerConfig(batch_size=50, block_ms=20, claim_idle_ms=30)
    consumer = StreamConsumer(client, flaky, hash_embedder, config=cfg)
    consumer.ensure_group()
    publish(client, [Ticket(id=f"r{i}", text=f"card declined {i}") for i in range(40)])
    with pytest.raises(RuntimeError):
        consumer.poll()
    assert stream_lag(client)["pending"] == 40  # nothing acked
    time.sleep(0.05)
    _drain(consumer, client)
    assert store.count() == 40
    assert stream_lag(client)["dead"] == 0


def test_entries_that_keep_failing_go_to_the_dead_letter_stream(client, store, hash_embedder) -> None:
    flaky = _FlakyStore(store, failures=1_000)
    cfg = ConsumerConfig(block_ms=10, claim_idle_ms=1, max_deliveries=3)
    consumer = StreamConsumer(client, flaky, hash_embedder, config=cfg)
    consumer.ensure_group()
    publish(client, [Ticket(id="poison", text="always fails")])
    for _ in range(10):
        with contextlib.suppress(RuntimeError):
            consumer.poll()
        time.sleep(0.005)
    dead = client.xrange(DEAD_KEY)
    assert len(dead) == 1
    assert dead[0][1][b"reason"].decode() == "gave up after 3 failed deliveries"
    assert stream_lag(client)["pending"] == 0


def test_new_tickets_are_labelled_at_once_against_the_live_clusters(client, store, hash_embedder) -> None:
    settings = Settings(data_dir=store.tickets.path.parent.parent, min_cluster_size=20)
    store.ensure_collections(32)
    tickets, vectors, _ = topic_data(3, 40)
    store.upsert_tickets(tickets, vectors)
    run = recluster(store, settings)
    assigner = CentroidAssigner(store)
    # a fresh ticket whose vector sits in topic 1 is labelled with topic 1's stable id at once
    fresh, fresh_vectors, _ = topic_data(1, 1, seed=7, prefix="fresh", start=1)
    used, labels = assigner.label(fresh_vectors)
    assert used == run["run_id"]
    store.upsert_tickets(fresh, fresh_vectors, labels)
    slot = store.get_state()["slot"]
    seen = view(store, fresh[0].id)
    expected = view(store, tickets[40].id)["cluster_id"]
    assert seen["cluster_id"] == expected and seen["assigned_by"] == "ingest"
    assert seen["label_run"] == run["run_id"] and seen["cluster_name"]
    assert 0.0 <= seen["outlier_score"] <= 1.0 and seen["is_outlier"] in (True, False)
    other = "a" if slot == "b" else "b"
    assert store.get_ticket(fresh[0].id).payload[f"{other}_cluster_id"] == expected  # both slots


def test_before_any_run_tickets_are_stored_unlabelled(store, hash_embedder) -> None:
    assigner = CentroidAssigner(store)
    store.ensure_collections(32)
    _, vectors, _ = topic_data(1, 3)
    assert assigner.label(vectors) == (None, [{}, {}, {}])
