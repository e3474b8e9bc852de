"""GET /search: semantic search, optionally inside one cluster."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from api.errors import ApiError
from api.schemas import SearchQuery
from api.services import services
from api.views import parse_query, ticket_out
from constellate.exceptions import Conflict
from constellate.labels import label_filter

bp = Blueprint("search", __name__)


@bp.get("/search")
def search() -> Any:
    """Rank tickets by similarity to ``q``; every hit honours ``cluster_id``/``cluster_name``."""
    query = parse_query(SearchQuery)
    svc = services()
    live = svc.live()
    cluster_id = query.cluster_id
    if cluster_id is not None and cluster_id not in live.names:
        raise ApiError(404, f"no cluster {cluster_id} in the current run")
    if query.cluster_name is not None:
        wanted = query.cluster_name.strip().lower()
        matches = sorted(cid for cid, name in live.names.items() if name.lower() == wanted)
        if not matches:
            raise ApiError(404, f"no cluster named {query.cluster_name!r}")
        if cluster_id is None:
            cluster_id = matches[0]
        elif cluster_id not in matches:  # both exist, so the request conflicts with the catalogue: 409
            raise Conflict(
                f"cluster_id {cluster_id} and cluster_name {query.cluster_name!r} name different clusters"
            )
    flt = label_filter(live.slot, cluster_id=cluster_id, is_outlier=None if query.include_outliers else False)
    vector = svc.embedder.embed([query.q])[0]
    hits = svc.store.search(vector, limit=query.limit, filter=flt)
    return jsonify(
        {
            "query": query.q,
            "cluster_id": cluster_id,
            "hits": [
                {**ticket_out(live.view(h.payload)), "score": round(float(h.score or 0.0), 4)} for h in hits
            ],
        }
    )
