"""Emerging-cluster alerts: the three rules, storage, and a webhook that retries without blocking."""

from __future__ import annotations

import gc
import json
import threading
import time
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from constellate.alerts import ALERT_KIND, WebhookNotifier, detect_alerts
from constellate.config import Settings
from constellate.embedding import normalize
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from tests.topics import topic_data


class Receiver:
    """A local webhook endpoint that fails the first ``failures`` posts with 503 and, given a ``gate``,
    answers no post before the gate is set."""

    def __init__(self, failures: int = 0, gate: threading.Event | None = None) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if gate is not None:
                    gate.wait(30)
                if receiver.attempts <= failures:
                    self.send_response(503)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_rules_born_growth_and_outlier_group() -> None:
    run = {
        "run_id": "r3",
        "events": [{"event": "born", "cluster_id": 9}, {"event": "continued", "cluster_id": 1}],
    }
    catalogue = [
        {"cluster_id": 1, "name": "card declined", "size": 200},  # grew 100 against an average of 10
        {"cluster_id": 2, "name": "refunds", "size": 130},  # grew 10, its usual pace
        {"cluster_id": 9, "name": "app crash", "size": 40},
    ]
    history = [
        {"sizes": {"1": 100, "2": 120}},
        {"sizes": {"1": 90, "2": 110}},
        {"sizes": {"1": 80, "2": 100}},
    ]
    rng = np.random.default_rng(0)
    centre = normalize(rng.normal(size=(1, 16)))[0]
    dense = normalize(centre + rng.normal(scale=0.02, size=(30, 16)))
    scattered = normalize(rng.normal(size=(40, 16)))
    outliers = np.vstack([scattered, dense]).astype(np.float32)

    def tickets_for(rows):
        return [{"ticket_id": f"o{r}", "text": f"text {r}"} for r in rows]

    alerts = detect_alerts(run, catalogue, history, outliers, tickets_for, 25, 3.0)
    kinds = {(a["rule"], a["cluster_id"]) for a in alerts}
    assert kinds == {("born", 9), ("growth", 1), ("outlier_group", None)}
    group = next(a for a in alerts if a["rule"] == "outlier_group")
    assert group["size"] >= 25 and all(int(t.split()[1]) >= 40 for t in group["examples"])  # the dense rows
    again = detect_alerts(run, catalogue, history, outliers, tickets_for, 25, 3.0, set(group["ticket_ids"]))
    assert "outlier_group" not in {a["rule"] for a in again}  # the same group is not news twice
    assert (
        detect_alerts(run, catalogue, [], outliers[:40], lambda rows: [], 25, 3.0) == []
    )  # first run: quiet


def test_a_new_topic_posts_an_alert_to_the_webhook(tmp_path, hash_embedder, receiver) -> None:
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=20, alert_min_size=25)
    store = edge_store(settings)
    try:
        store.ensure_collections(32)
        tickets, vectors, _ = topic_data(4, 60)
        store.upsert_tickets(tickets, vectors)
        namer = KeyBERTNamer(hash_embedder)
        notifier = WebhookNotifier(receiver.url, backoff=0.05)
        first = recluster(store, settings, namer=namer, notifier=notifier)
        assert first["alerts"] == 0
        fresh, fresh_vectors, _ = topic_data(1, 60, seed=5, prefix="new", start=6)  # "app crash update"
        store.upsert_tickets(fresh, fresh_vectors)
        second = recluster(store, settings, namer=namer, notifier=notifier)
        notifier.wait(10)
    finally:
        store.close()
    assert second["alerts"] >= 1
    posted = [a for body in receiver.bodies for a in body["alerts"]]
    born = [a for a in posted if a["rule"] == "born"]
    assert len(born) == 1 and born[0]["size"] >= 55 and born[0]["run_id"] == second["run_id"]
    assert {"crash", "app"} & set(born[0]["cluster_name"].lower().split())  # a phrase name now
    store = edge_store(settings)
    try:
        assert [a["alert_id"] for a in store.list_records(ALERT_KIND)] == [a["alert_id"] for a in posted]
    finally:
        store.close()


def test_webhook_retries_with_backoff_and_never_blocks() -> None:
    receiver = Receiver(failures=2)
    try:
        notifier = WebhookNotifier(receiver.url, retries=5, backoff=0.2)
        started = time.perf_counter()
        notifier.notify([{"alert_id": "x", "rule": "born"}])
        returned = time.perf_counter() - started
        notifier.wait(10)
    finally:
        receiver.close()
    assert returned < 0.1  # handed to a thread; the run goes on
    assert receiver.attempts == 3 and notifier.delivered == 1
    assert receiver.bodies == [{"alerts": [{"alert_id": "x", "rule": "born"}]}]


def test_webhook_keeps_no_finished_delivery_and_waits_for_pending_ones() -> None:
    gate = threading.Event()
    receiver = Receiver(gate=gate)
    try:
        notifier = WebhookNotifier(receiver.url, retries=1, backoff=0.01)
        before = set(threading.enumerate())
        for i in range(3):
            notifier.notify([{"alert_id": f"a{i}"}])
        started = [t for t in threading.enumerate() if t not in before and t.name == "alert-webhook"]
        assert len(started) == 3 and notifier.pending == 3 and notifier.delivered == 0
        deliveries = [weakref.ref(t) for t in started]
        del started
        threading.Timer(0.3, gate.set).start()
        notifier.wait(10)  # returns once the three held deliveries went through
        assert notifier.delivered == 3 and notifier.pending == 0
        for i in range(50):  # a long-lived worker: one delivery per run
            notifier.notify([{"alert_id": f"b{i}"}])
            notifier.wait(10)
    finally:
        gate.set()
        receiver.close()
    assert notifier.delivered == 53
    gc.collect()
    assert [ref for ref in deliveries if ref() is not None] == []  # nothing holds a finished thread
    assert notifier.pending == 0


def test_an_unreachable_webhook_gives_up_quietly() -> None:
    notifier = WebhookNotifier("http://127.0.0.1:9/nothing-listens", retries=2, backoff=0.01, timeout=1)
    notifier.notify([{"alert_id": "y"}])
    notifier.wait(10)
    assert notifier.delivered == 0 and notifier.pending == 0  # a delivery that gave up is dropped too


def test_scattered_outliers_alone_raise_no_group() -> None:
    scattered = normalize(np.random.default_rng(1).normal(size=(200, 16))).astype(np.float32)
    run = {"run_id": "r", "events": []}
    assert detect_alerts(run, [], [{"sizes": {}}], scattered, lambda rows: [], 25, 3.0) == []
