"""GET /metrics (Prometheus text format), request timing and request-id access logs."""

from __future__ import annotations

import calendar
import logging
import time
import uuid
from typing import Any

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from api.services import Services
from constellate.labels import label_filter
from constellate.stream import STATS_KEY, stream_lag

log = logging.getLogger("constellate.api")
bp = Blueprint("metrics", __name__)


class ServiceCollector:
    """Reads the live figures from the store and Redis at scrape time."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Any:
        store = self.svc.store
        state = store.get_state()
        tickets = store.count()
        slot = state.get("slot")
        outliers = store.count(label_filter(slot, is_outlier=True)) if slot else 0
        yield GaugeMetricFamily("constellate_tickets", "Tickets stored", value=tickets)
        yield GaugeMetricFamily(
            "constellate_clusters",
            "Clusters in the live run",
            value=len(store.list_clusters(state.get("current_run"))),
        )
        yield GaugeMetricFamily(
            "constellate_outlier_share",
            "Share of tickets flagged as outliers",
            value=outliers / tickets if tickets else 0,
        )
        runs = store.list_runs(limit=20)
        done = [r for r in runs if r.get("status") == "succeeded" and r.get("finished_at")]
        if done:
            yield GaugeMetricFamily(
                "constellate_recluster_seconds",
                "Duration of the last successful run",
                value=float((done[0].get("seconds") or {}).get("total", float("nan"))),
            )
            finished = calendar.timegm(time.strptime(done[0]["finished_at"][:19], "%Y-%m-%dT%H:%M:%S"))
            yield GaugeMetricFamily(
                "constellate_recluster_last_success_timestamp_seconds",
                "When the last run succeeded",
                value=finished,
            )
        try:
            lag = stream_lag(self.svc.redis)
            stats = {k.decode(): float(v) for k, v in self.svc.redis.hgetall(STATS_KEY).items()}
            used_memory = int(self.svc.redis.info("memory")["used_memory"])
        except Exception as exc:  # the store's figures above still go out; say the broker's did not
            log.warning("metrics: broker unreachable: %s: %s", type(exc).__name__, exc)
            yield GaugeMetricFamily("constellate_broker_up", "Redis answered this scrape", value=0)
            return
        yield GaugeMetricFamily("constellate_broker_up", "Redis answered this scrape", value=1)
        yield GaugeMetricFamily("constellate_redis_used_memory_bytes", "Redis used_memory", value=used_memory)
        for key, help_text in (
            ("length", "Entries in the ingestion stream"),
            ("undelivered", "Entries not yet read by the ingestion group (ingest lag)"),
            ("pending", "Entries read but not yet stored and acknowledged"),
            ("dead", "Entries in the dead-letter stream (it keeps the newest ones)"),
        ):
            yield GaugeMetricFamily(f"constellate_stream_{key}", help_text, value=lag[key])
        yield CounterMetricFamily(
            "constellate_dead_lettered",
            "Entries ever sent to the dead-letter stream",
            value=stats.get("dead", 0),
        )
        yield CounterMetricFamily(
            "constellate_tickets_ingested",
            "Tickets stored by the ingestion consumer",
            value=stats.get("tickets", 0),
        )
        yield CounterMetricFamily(
            "constellate_ingest_batches", "Micro-batches stored", value=stats.get("batches", 0)
        )
        yield CounterMetricFamily(
            "constellate_ingest_batch_seconds",
            "Seconds spent embedding and storing batches",
            value=stats.get("batch_seconds", 0),
        )


def install(app: Flask, svc: Services) -> None:
    """Time every request, log it as one JSON record with its request id, and serve /metrics."""
    registry = CollectorRegistry()
    latency = Histogram(
        "constellate_http_request_seconds",
        "API request latency",
        ["route", "method", "status"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    registry.register(ServiceCollector(svc))
    app.extensions["constellate_metrics"] = registry

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex

    @app.after_request
    def _finish(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "unmatched"
        latency.labels(route, request.method, str(response.status_code)).observe(seconds)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        log.info(
            "request",
            extra={
                "request_id": g.get("request_id"),
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "ms": round(seconds * 1000, 2),
            },
        )
        return response

    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition."""
    from flask import current_app

    return Response(
        generate_latest(current_app.extensions["constellate_metrics"]), mimetype=CONTENT_TYPE_LATEST
    )
