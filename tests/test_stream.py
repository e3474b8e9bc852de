"""The ticket stream against a real Valkey: micro-batches, acks after upsert, redelivery, dead letters."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest
import redis

from constellate.assign import CentroidAssigner
from constellate.config import Settings
from constellate.pipeline import recluster
from constellate.store import edge_store
from constellate.stream import (
    DEAD_KEY,
    GROUP,
    STATS_KEY,
    STREAM_KEY,
    ConsumerConfig,
    StreamConsumer,
    forget_idle_consumers,
    publish,
    stream_lag,
)
from constellate.tickets import Ticket, point_id
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
    assert stream_lag(client) == {"length": 0, "undelivered": 0, "pending": 0, "dead": 0}  # trimmed


class _RecordingEmbedder:
    """The hashing embedder, noting the texts of each encode call."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts):
        self.calls.append(list(texts))
        return self.inner.embed(texts)


def test_a_batch_is_everything_queued_and_reaches_the_encoder_sorted_by_length(
    client, store, hash_embedder
) -> None:
    import random

    embedder = _RecordingEmbedder(hash_embedder)
    consumer = StreamConsumer(client, store, embedder, config=ConsumerConfig(block_ms=10))
    consumer.ensure_group()
    rng = random.Random(0)
    texts = [" ".join(["word"] * rng.randint(1, 60)) + f" {i}" for i in range(5000)]
    publish(client, [Ticket(id=f"b{i}", text=t) for i, t in enumerate(texts)])
    assert consumer.poll() == 4096  # the default batch, not 64 in arrival order
    lengths = [len(t) for call in embedder.calls for t in call]
    assert len(lengths) == 4096 and lengths == sorted(lengths)
    assert consumer.poll() == 904
    _drain(consumer, client)
    assert store.count() == 5000


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


def test_the_stream_holds_the_backlog_not_the_history(client, store, hash_embedder) -> None:
    consumer = StreamConsumer(
        client, store, hash_embedder, config=ConsumerConfig(batch_size=512, block_ms=10)
    )
    consumer.ensure_group()
    peak_bytes = 0
    for chunk in range(10):  # 20,000 tickets, published while the consumer works
        publish(client, [Ticket(id=f"h{chunk}-{i}", text=f"invoice {i} chunk {chunk}") for i in range(2000)])
        peak_bytes = max(peak_bytes, int(client.memory_usage(STREAM_KEY)))
        for _ in range(3):
            consumer.poll()
            lag = stream_lag(client)
            assert lag["length"] <= lag["pending"] + lag["undelivered"], lag  # only the backlog is kept
    _drain(consumer, client)
    assert store.count() == 20_000
    assert stream_lag(client)["length"] == 0
    assert int(client.memory_usage(STREAM_KEY)) < peak_bytes / 20


def test_a_killed_consumers_pending_entries_survive_trimming(client, store, hash_embedder) -> None:
    cfg = ConsumerConfig(batch_size=30, block_ms=10, claim_idle_ms=60_000)
    live = StreamConsumer(client, store, hash_embedder, name="live", config=cfg)
    live.ensure_group()
    ids = publish(client, [Ticket(id=f"k{i}", text=f"login fails {i}") for i in range(100)])
    live.poll()  # entries 0-29 stored, acked, trimmed
    killed = client.xreadgroup(GROUP, "killed", {STREAM_KEY: ">"}, count=30)  # 30-59, never acked
    assert [e[0].decode() for e in killed[0][1]] == ids[30:60]
    live.poll()
    live.poll()  # 60-99 stored and acked: the trim stops below the killed consumer's oldest entry
    assert [e[0].decode() for e in client.xrange(STREAM_KEY)] == ids[30:]
    assert store.count() == 70
    for entry_id in ids[30:60]:  # the killed consumer went quiet a while ago
        client.xclaim(STREAM_KEY, GROUP, "killed", 0, [entry_id], idle=120_000, justid=True)
    _drain(live, client)
    assert store.count() == 100 and stream_lag(client)["dead"] == 0
    assert client.xlen(STREAM_KEY) == 0


def test_dead_letters_are_capped_and_counted(client, store, hash_embedder) -> None:
    cfg = ConsumerConfig(block_ms=10, dead_letter_max_len=5)
    consumer = StreamConsumer(client, store, hash_embedder, config=cfg)
    consumer.ensure_group()
    for i in range(12):
        client.xadd(STREAM_KEY, {"ticket": f"{{not json {i}"})
    publish(client, [Ticket(id="fine", text="a good one")])
    _drain(consumer, client)
    assert store.count() == 1
    dead = client.xrange(DEAD_KEY)
    assert len(dead) == 5 and stream_lag(client)["dead"] == 5  # the newest five are kept
    assert dead[-1][1][b"ticket"].decode() == "{not json 11"
    assert int(client.hget(STATS_KEY, "dead")) == 12  # every one is counted


def test_pending_lookups_do_not_stop_at_ten_thousand_entries(client, store, hash_embedder) -> None:
    """A failing entry behind 10,001 entries another live consumer holds is still counted and given
    up on (the delivery count is looked up per entry of the batch, not in the first 10,000)."""
    flaky = _FlakyStore(store, failures=1_000)
    cfg = ConsumerConfig(batch_size=64, block_ms=10, claim_idle_ms=60_000, max_deliveries=2)
    consumer = StreamConsumer(client, flaky, hash_embedder, name="me", config=cfg)
    consumer.ensure_group()
    publish(client, [Ticket(id=f"busy{i}", text="held elsewhere") for i in range(10_001)])
    client.xreadgroup(GROUP, "busy", {STREAM_KEY: ">"}, count=10_001)  # pending with a live consumer
    (poison,) = publish(client, [Ticket(id="poison", text="always fails")])
    with pytest.raises(RuntimeError):
        consumer.poll()
    for _ in range(200):  # the PEL is scanned 640 entries per poll, then the poison is retaken
        client.xclaim(STREAM_KEY, GROUP, "me", 0, [poison], idle=120_000, justid=True)
        with contextlib.suppress(RuntimeError):
            consumer.poll()
        if client.xlen(DEAD_KEY):
            break
    dead = client.xrange(DEAD_KEY)
    assert [f[b"entry"].decode() for _, f in dead] == [poison]
    assert dead[0][1][b"reason"].decode() == "gave up after 2 failed deliveries"
    assert stream_lag(client)["pending"] == 10_001  # the other consumer's entries are untouched


class _BrokenGroups:
    """A real client whose XINFO GROUPS fails, as when Redis drops the connection mid-scrape."""

    def __init__(self, client) -> None:
        self._client = client

    def xinfo_groups(self, stream):
        raise redis.ConnectionError("connection reset by peer")

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_stream_lag_reports_a_missing_stream_and_raises_on_redis_errors(client) -> None:
    assert stream_lag(client) == {"length": 0, "undelivered": 0, "pending": 0, "dead": 0}
    publish(client, [Ticket(id="x", text="queued")])
    StreamConsumer(client, None, None).ensure_group()  # type: ignore[arg-type]
    assert stream_lag(client)["undelivered"] == 1
    with pytest.raises(redis.ConnectionError):  # not silently "nothing undelivered"
        stream_lag(_BrokenGroups(client))


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


class _SlowEmbedder:
    """An embedder that takes ``seconds`` per call (a batch of long texts) and records its texts."""

    def __init__(self, inner, seconds: float) -> None:
        self.inner, self.seconds, self.texts = inner, seconds, []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts):
        self.texts.extend(texts)
        time.sleep(self.seconds)
        return self.inner.embed(texts)


def test_a_slow_batch_stays_with_its_live_consumer_and_is_stored_once(client, store, hash_embedder) -> None:
    """A batch taking several claim-idle periods is not taken over by another live consumer (it
    would process it again and, after max_deliveries takeovers, dead-letter healthy entries)."""
    import threading

    cfg = ConsumerConfig(batch_size=100, block_ms=10, claim_idle_ms=600, max_deliveries=2)
    slow = _SlowEmbedder(hash_embedder, seconds=2.5)
    other = _SlowEmbedder(hash_embedder, seconds=0.0)
    first = StreamConsumer(client, store, slow, name="slow", config=cfg)
    second = StreamConsumer(client, store, other, name="other", config=cfg)
    first.ensure_group()
    publish(client, [Ticket(id=f"w{i}", text=f"long ticket {i}") for i in range(40)])
    worker = threading.Thread(target=first.poll)
    worker.start()
    deadline = time.monotonic() + 10
    while stream_lag(client)["pending"] < 40:  # the slow consumer has read the batch
        assert time.monotonic() < deadline
        time.sleep(0.005)
    handled = 0
    while worker.is_alive():  # the other consumer polls all the while (XAUTOCLAIM each time)
        handled += second.poll()
    worker.join()
    assert handled == 0 and other.texts == []  # nothing claimed away from the live consumer
    assert len(slow.texts) == 40 and store.count() == 40
    lag = stream_lag(client)
    assert lag["pending"] == 0 and lag["dead"] == 0


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


def test_a_redelivered_older_entry_does_not_undo_a_newer_one(client, store, hash_embedder) -> None:
    """A ticket posted, taken by a consumer that dies, then posted again with new text: the new
    text is stored, and the first entry, redelivered later, leaves it in place (and is acked)."""
    cfg = ConsumerConfig(batch_size=10, block_ms=10, claim_idle_ms=60_000)
    live = StreamConsumer(client, store, hash_embedder, name="live", config=cfg)
    live.ensure_group()
    first = publish(client, [Ticket(id="edited", text="my card was declined")])
    assert client.xreadgroup(GROUP, "killed", {STREAM_KEY: ">"}, count=1)  # then it died
    publish(client, [Ticket(id="edited", text="my card was declined twice at the same shop")])
    live.poll()
    assert view(store, "edited")["text"] == "my card was declined twice at the same shop"
    client.xclaim(STREAM_KEY, GROUP, "killed", 0, first, idle=120_000, justid=True)
    _drain(live, client)
    got = store.get_points([point_id("edited")], with_vector=True)[0]
    assert got.payload["text"] == "my card was declined twice at the same shop"
    assert np.allclose(got.vector, hash_embedder.embed([got.payload["text"]])[0], atol=1e-5)
    assert stream_lag(client) == {**stream_lag(client), "pending": 0, "dead": 0}


def test_consumers_gone_quiet_with_nothing_pending_are_forgotten(client, store, hash_embedder) -> None:
    """Every start names a new consumer (host and thread): a restarted service leaves its old name in
    the group. A consumer with nothing pending, quiet for longer than the limit, is removed; one
    still holding entries (a dead consumer's, to be claimed) and a recent one stay."""
    cfg = ConsumerConfig(batch_size=10, block_ms=10)
    live = StreamConsumer(client, store, hash_embedder, name="live", config=cfg)
    live.ensure_group()
    publish(client, [Ticket(id=f"q{i}", text=f"app crashes {i}") for i in range(3)])
    client.xreadgroup(GROUP, "dead-with-entries", {STREAM_KEY: ">"}, count=1)
    client.xgroup_createconsumer(STREAM_KEY, GROUP, "restarted-long-ago")
    time.sleep(1.5)
    client.xgroup_createconsumer(STREAM_KEY, GROUP, "recent")
    assert forget_idle_consumers(client, idle_ms=1000) == ["restarted-long-ago"]
    names = {c["name"].decode() for c in client.xinfo_consumers(STREAM_KEY, GROUP)}
    assert names == {"dead-with-entries", "recent"}


def test_a_server_refusing_the_clean_up_script_does_not_stop_ingestion(client, store, hash_embedder) -> None:
    """Scripts refused (an ACL without @scripting, EVAL disabled on a managed Redis): the clean-up is
    skipped with a warning, and the consumer joins the group and stores tickets as before."""

    class NoScripts:
        def __init__(self, inner) -> None:
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def eval(self, *args, **kwargs):
            raise redis.ResponseError("NOPERM this user has no permissions to run the 'eval' command")

    consumer = StreamConsumer(NoScripts(client), store, hash_embedder, config=ConsumerConfig(block_ms=10))
    consumer.ensure_group()
    publish(client, [Ticket(id="s1", text="refund not received")])
    _drain(consumer, client)
    assert store.count() == 1
