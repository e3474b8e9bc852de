"""The web page (GET /, its static files), the map data (GET /map) and the alerts (GET /alerts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, send_from_directory

from api.schemas import LimitQuery, MapQuery
from api.services import services
from api.views import parse_query
from constellate.alerts import ALERT_KIND
from constellate.labels import slot_field, ticket_view
from constellate.store import Filter, IsEmpty

STATIC = Path(__file__).resolve().parent.parent / "static"

bp = Blueprint("page", __name__)


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
    store = services().store
    state = store.get_state()
    slot = state.get("slot")
    if slot is None:
        return jsonify({"run_id": None, "total": 0, "points": []})
    placed = Filter(must_not=(IsEmpty(slot_field(slot, "map_x")),))
    fields = [
        "ticket_id",
        "text",
        *(slot_field(slot, f) for f in ("cluster_id", "is_outlier", "map_x", "map_y")),
    ]
    points: list[dict[str, Any]] = []
    offset = None
    while len(points) < query.limit:
        records, offset = store.scroll_tickets(
            placed, limit=min(1024, query.limit - len(points)), offset=offset, fields=fields
        )
        for r in records:
            view = ticket_view(r.payload, slot)
            points.append(
                {
                    "ticket_id": view["ticket_id"],
                    "x": r.payload[slot_field(slot, "map_x")],
                    "y": r.payload[slot_field(slot, "map_y")],
                    "cluster_id": view["cluster_id"],
                    "is_outlier": view["is_outlier"],
                    "text": str(view["text"])[:300],
                }
            )
        if offset is None or not records:
            break
    return jsonify({"run_id": state.get("current_run"), "total": store.count(placed), "points": points})


@bp.get("/alerts")
def alerts() -> Any:
    """Emerging-cluster alerts, newest first."""
    query = parse_query(LimitQuery)
    return jsonify({"alerts": services().store.list_records(ALERT_KIND, limit=query.limit)})
