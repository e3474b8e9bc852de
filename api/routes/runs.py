"""POST /recluster, GET /runs, GET /runs/<id>."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from api.errors import ApiError
from api.schemas import LimitQuery, ReclusterIn
from api.services import services
from api.views import parse_body, parse_query

bp = Blueprint("runs", __name__)


@bp.post("/recluster")
def recluster() -> Any:
    """Queue a recluster (the worker skips it, saying why, if one is already running); the optional
    body ``{"full": true}`` asks for a full run."""
    body = parse_body(ReclusterIn, optional=True)
    return jsonify({"task_id": services().enqueue_recluster(full=body.full), "status": "queued"}), 202


@bp.get("/runs")
def list_runs() -> Any:
    """Run records, newest first (each edit id a run accounted for is in ``GET /runs/<id>``; the list
    says how many)."""
    query = parse_query(LimitQuery)
    store = services().store
    runs = [
        {**{k: v for k, v in r.items() if k != "edits_seen"}, "n_edits_seen": len(r.get("edits_seen", []))}
        for r in store.list_runs(limit=query.limit)
    ]
    return jsonify({"current_run": store.get_state().get("current_run"), "runs": runs})


@bp.get("/runs/<run_id>")
def get_run(run_id: str) -> Any:
    """One run record."""
    run = services().store.get_run(run_id)
    if run is None:
        raise ApiError(404, f"no run {run_id!r}")
    return jsonify(run)
