"""Human edits: PATCH /clusters/<id> (rename, pin; clusters and topics), merge, split, move into a
topic, not-an-outlier, GET /edits."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from api.schemas import LimitQuery, MergeIn, MoveIn, RenameIn, SplitIn
from api.services import services
from api.views import parse_body, parse_query
from constellate import edits
from constellate.exceptions import Conflict, InputError, NotFound

bp = Blueprint("edits", __name__)


@bp.patch("/clusters/<int:cluster_id>")
def rename(cluster_id: int) -> Any:
    """Rename a cluster (pinned by default: later runs keep the name)."""
    body = parse_body(RenameIn)
    return jsonify(edits.rename_cluster(services().store, cluster_id, body.name, body.pinned))


@bp.post("/clusters/<int:cluster_id>/merge")
def merge(cluster_id: int) -> Any:
    """Merge the body's ``cluster_id`` into this cluster; later runs keep them one."""
    body = parse_body(MergeIn)
    if body.cluster_id == cluster_id:  # well formed (the schema cannot relate body to path), so 409
        raise Conflict(f"cluster {cluster_id} cannot be merged into itself; name another cluster")
    return jsonify(edits.merge_clusters(services().store, cluster_id, body.cluster_id))


@bp.post("/clusters/<int:cluster_id>/split")
def split(cluster_id: int) -> Any:
    """Move tickets of this cluster into a new pinned cluster; 201 with the edit (its ``cluster_id``)."""
    body = parse_body(SplitIn)
    try:
        return jsonify(edits.split_cluster(services().store, cluster_id, body.ticket_ids, body.name)), 201
    except NotFound:
        raise
    except InputError as exc:
        # The body passed the schema (name, ticket_ids), so what the core still refuses is the state:
        # a ticket outside this cluster, or a split that would leave it empty.
        raise Conflict(str(exc)) from exc


@bp.post("/clusters/<int:cluster_id>/move")
def move(cluster_id: int) -> Any:
    """Put this cluster into another topic; later runs keep it there while that topic exists."""
    body = parse_body(MoveIn)
    return jsonify(edits.move_cluster(services().store, cluster_id, body.topic_id))


@bp.post("/tickets/<path:ticket_id>/not-outlier")
def not_outlier(ticket_id: str) -> Any:
    """Clear a ticket's outlier flag now and in every later run."""
    return jsonify(edits.mark_not_outlier(services().store, ticket_id))


@bp.get("/edits")
def list_edits() -> Any:
    """Human edits, newest first (the newest ``limit``)."""
    query = parse_query(LimitQuery)
    return jsonify({"edits": edits.list_edits(services().store, limit=query.limit)})
