"""/metrics and /healthz when something is wrong: they say so, and the log says why."""

from __future__ import annotations

import logging
import time

import pytest

from api import create_app

DEAD_BROKER = "redis://127.0.0.1:1"  # nothing listens there: connection refused at once


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@pytest.fixture
def daylight_saving_zone():
    """The process runs in US Eastern time (EDT in July) for the test, then back in its own zone."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")  # a POSIX rule: needs no tz database
    time.tzset()
    yield
    mp.undo()
    time.tzset()


def test_last_success_timestamp_is_utc_under_daylight_saving(client, api_store, daylight_saving_zone) -> None:
    store, _ = api_store
    run = next(r for r in store.list_runs(limit=5) if r.get("status") == "succeeded")
    run["finished_at"] = "2024-07-01T12:00:00.000Z"  # summer: EDT, four hours behind UTC
    store.save_run(run)
    text = client.get("/metrics").get_data(as_text=True)
    assert _metric(text, "constellate_recluster_last_success_timestamp_seconds") == 1719835200.0


def test_metrics_show_the_broker_up(client) -> None:
    text = client.get("/metrics").get_data(as_text=True)
    assert _metric(text, "constellate_broker_up") == 1.0
    assert _metric(text, "constellate_stream_length") == 0.0
    assert _metric(text, "constellate_redis_used_memory_bytes") > 0
    assert _metric(text, "constellate_dead_lettered_total") == 0.0


def test_metrics_expose_a_dead_broker_and_log_why(api_store, hash_embedder, caplog) -> None:
    store, settings = api_store
    app = create_app(settings, store=store, embedder=hash_embedder, redis_url=DEAD_BROKER)
    with caplog.at_level(logging.WARNING, logger="constellate.api"):
        resp = app.test_client().get("/metrics")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert _metric(text, "constellate_broker_up") == 0.0
    assert _metric(text, "constellate_tickets") == 160.0  # the store's figures are still there
    assert _metric(text, "constellate_stream_length") is None  # no made-up stream figures
    (record,) = [r for r in caplog.records if "broker" in r.getMessage()]
    assert "ConnectionError" in record.getMessage() and "refused" in record.getMessage().lower()


def test_healthz_logs_the_failing_part_and_its_reason(api_store, hash_embedder, caplog) -> None:
    store, settings = api_store
    app = create_app(settings, store=store, embedder=hash_embedder, redis_url=DEAD_BROKER)
    with caplog.at_level(logging.WARNING, logger="constellate.api"):
        resp = app.test_client().get("/healthz")
    assert resp.status_code == 503 and resp.get_json() == {
        "status": "degraded",
        "store": True,
        "broker": False,
    }
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage().startswith("healthz: broker unreachable: ConnectionError")
    assert "refused" in record.getMessage().lower()
