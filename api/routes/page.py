"""The web page (GET /, its static files), the map data (GET /map) and the alerts (GET /alerts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, send_from_directory

from api.schemas import LimitQuery, MapQuery
from api.services import services
from api.views import parse_query
from constellate import catalogue
from constellate.alerts import ALERT_KIND

STATIC = Path(__file__).resolve().parent.parent / "static"

bp = Blueprint("page", __name__)
MAP_FIELDS = ("ticket_id", "x", "y", "cluster_id", "is_outlier", "text")


@bp.get("/")
def index() -> Any:
    """The page: catalogue, map, search, outliers, runs and alerts (all files served from here)."""
    return send_from_directory(STATIC, "index.html", max_age=0)


@bp.get("/static/<path:name>")
def static_file(name: str) -> Any:
    return send_from_directory(STATIC, name, max_age=0)


@bp.get("/map")
def map_points() -> Any:
    """Tickets the current run placed on the map (a seeded sample), with their cluster and outlier flag."""
    query = parse_query(MapQuery)
    svc = services()
    live = svc.live()

    def build() -> bytes:
        total, rows = catalogue.map_points(svc.store, live, query.limit)
        points = [{k: r.get(k) for k in MAP_FIELDS} for r in rows]
        for point in points:  # the topic as it is now (a moved cluster's tickets follow it)
            point["topic_id"] = (
                live.topics.get(point["cluster_id"]) if point["cluster_id"] is not None else None
            )
        body = {"run_id": live.run_id, "total": total, "points": points}
        return jsonify(body).get_data()  # the bytes jsonify sends (compact, newline-terminated)

    # the sample changes only with the run and with edits: built once per (run, edit clock)
    body = svc.answers.get(("map", live.key, query.limit), build)
    return Response(body, mimetype=current_app.json.mimetype)  # type: ignore[attr-defined]


@bp.get("/alerts")
def alerts() -> Any:
    """Emerging-cluster alerts, newest first."""
    query = parse_query(LimitQuery)
    return jsonify({"alerts": services().store.list_records(ALERT_KIND, limit=query.limit)})
