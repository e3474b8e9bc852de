"""GET /clusters, GET /clusters/<id>, GET /outliers."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from api.errors import ApiError
from api.schemas import ClusterQuery, LimitQuery
from api.services import services
from api.views import parse_query, ticket_out
from constellate import catalogue

bp = Blueprint("clusters", __name__)


@bp.get("/clusters")
def list_clusters() -> Any:
    """The live catalogue at one level (``?level=cluster``, the default, or ``topic``), largest first."""
    query = parse_query(ClusterQuery)
    svc = services()
    live = svc.live()
    entries = catalogue.cluster_summaries(svc.store, live, query.level)
    return jsonify({"run_id": live.run_id, "level": query.level, "clusters": entries})


@bp.get("/clusters/<int:cluster_id>")
def get_cluster(cluster_id: int) -> Any:
    """One cluster or topic with its exemplar tickets, lineage, and its topic or its clusters."""
    svc = services()
    detail = catalogue.cluster_detail(svc.store, svc.live(), cluster_id)
    if detail is None:
        raise ApiError(404, f"no cluster {cluster_id} in the current run")
    detail["exemplars"] = [ticket_out(t) for t in detail["exemplars"]]
    return jsonify(detail)


@bp.get("/outliers")
def outliers() -> Any:
    """Tickets flagged as outliers in the live labelling, highest score first."""
    query = parse_query(LimitQuery)
    svc = services()
    live = svc.live()
    return jsonify(
        {
            "run_id": live.run_id,
            "outliers": [ticket_out(v) for v in catalogue.top_outliers(svc.store, live, query.limit)],
        }
    )
