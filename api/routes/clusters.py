"""GET /clusters, GET /clusters/<id>, GET /outliers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, jsonify

from api.errors import ApiError
from api.schemas import LimitQuery
from api.services import services
from api.views import parse_query, ticket_out
from constellate.edits import edits_for, list_edits
from constellate.labels import label_filter, slot_field
from constellate.store import DateRange, Filter

bp = Blueprint("clusters", __name__)


def _growth(slot: str | None, days: float) -> dict[int, int]:
    """Tickets created in the last ``days`` per live cluster (one facet call)."""
    if slot is None:
        return {}
    since = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    flt = Filter(must=(DateRange("created_at", gte=since),))
    return {int(k): v for k, v in services().store.facet(slot_field(slot, "cluster_id"), flt).items()}


def _histories(limit: int = 12) -> dict[int, list[int]]:
    """Each cluster's size at the last successful runs, oldest first (the catalogue's sparkline)."""
    runs = [r for r in services().store.list_runs(limit=limit * 2) if r.get("status") == "succeeded"][:limit]
    out: dict[int, list[int]] = {}
    for run in reversed(runs):
        for cid, size in (run.get("sizes") or {}).items():
            out.setdefault(int(cid), []).append(int(size))
    return out


def _summary(
    payload: dict[str, Any], day: dict[int, int], week: dict[int, int], history: dict[int, list[int]]
) -> dict[str, Any]:
    cid = int(payload["cluster_id"])
    return {
        "cluster_id": cid,
        "name": payload.get("name", ""),
        "keywords": payload.get("keywords", []),
        "size": int(payload.get("size", 0)),
        "pinned": bool(payload.get("pinned", False)),
        "growth_24h": day.get(cid, 0),
        "growth_7d": week.get(cid, 0),
        "history": history.get(cid, []),
    }


@bp.get("/clusters")
def list_clusters() -> Any:
    """The live catalogue, largest first."""
    svc = services()
    state = svc.store.get_state()
    slot = state.get("slot")
    day, week = _growth(slot, 1), _growth(slot, 7)
    records = svc.store.list_clusters(state.get("current_run"))
    history = _histories()
    clusters = sorted((_summary(r.payload, day, week, history) for r in records), key=lambda c: -c["size"])
    return jsonify({"run_id": state.get("current_run"), "clusters": clusters})


@bp.get("/clusters/<int:cluster_id>")
def get_cluster(cluster_id: int) -> Any:
    """One cluster with its exemplar tickets and lineage."""
    svc = services()
    state = svc.store.get_state()
    slot = state.get("slot")
    record = svc.store.get_cluster(state.get("current_run"), cluster_id)
    if record is None:
        raise ApiError(404, f"no cluster {cluster_id} in the current run")
    payload = record.payload
    exemplars = [svc.store.get_ticket(t) for t in payload.get("exemplars", [])]
    lineage = []
    for run in reversed(svc.store.list_runs(limit=50)):
        for event in run.get("events", []):
            if cluster_id in (event.get("cluster_id"), event.get("from"), event.get("into")):
                lineage.append({"run_id": run["run_id"], "at": run.get("finished_at"), **event})
    for edit in reversed(edits_for(list_edits(svc.store), cluster_id)):
        lineage.append({"event": f"edit:{edit['type']}", "at": edit["created_at"], **edit})
    lineage.sort(key=lambda e: str(e.get("at") or ""))
    detail = {
        **_summary(payload, _growth(slot, 1), _growth(slot, 7), _histories()),
        "exemplars": [ticket_out(r.payload, slot) for r in exemplars if r is not None],
        "parents": payload.get("parents", []),
        "born_run": payload.get("born_run"),
        "lineage": lineage,
    }
    return jsonify(detail)


@bp.get("/outliers")
def outliers() -> Any:
    """Tickets flagged as outliers in the live labelling, highest score first."""
    query = parse_query(LimitQuery)
    svc = services()
    state = svc.store.get_state()
    slot = state.get("slot")
    if slot is None:
        return jsonify({"run_id": None, "outliers": []})
    flagged: list[dict[str, Any]] = []
    offset = None
    while True:
        records, offset = svc.store.scroll_tickets(
            label_filter(slot, is_outlier=True), limit=1024, offset=offset
        )
        flagged.extend(r.payload for r in records)
        if offset is None:
            break
    flagged.sort(key=lambda p: -float(p.get(slot_field(slot, "outlier_score")) or 0.0))
    return jsonify(
        {
            "run_id": state.get("current_run"),
            "outliers": [ticket_out(p, slot) for p in flagged[: query.limit]],
        }
    )
