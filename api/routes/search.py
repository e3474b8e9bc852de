"""GET /search: semantic search, optionally inside one cluster."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from api.errors import ApiError
from api.schemas import SearchQuery
from api.services import services
from api.views import parse_query, ticket_out
from constellate.catalogue import Live
from constellate.exceptions import Conflict
from constellate.labels import label_filter

bp = Blueprint("search", __name__)


@bp.get("/search")
def search() -> Any:
    """Rank tickets by similarity to ``q``; every hit honours the cluster and topic filters."""
    query = parse_query(SearchQuery)
    svc = services()
    live = svc.live()
    cluster_id = _pick(live, query.cluster_id, query.cluster_name, "cluster")
    topic_id = _pick(live, query.topic_id, query.topic_name, "topic")
    clusters = live.children(topic_id) if topic_id is not None else None
    if cluster_id is not None and clusters is not None and cluster_id not in clusters:
        raise Conflict(f"cluster {cluster_id} is not in topic {topic_id}")
    flt = label_filter(
        live.slot,
        cluster_id=cluster_id,
        is_outlier=None if query.include_outliers else False,
        cluster_ids=clusters,
    )
    vector = svc.embedder.embed([query.q])[0]
    hits = svc.store.search(vector, limit=query.limit, filter=flt)
    return jsonify(
        {
            "query": query.q,
            "cluster_id": cluster_id,
            "topic_id": topic_id,
            "hits": [
                {**ticket_out(live.view(h.payload)), "score": round(float(h.score or 0.0), 4)} for h in hits
            ],
        }
    )


def _pick(live: Live, wanted_id: int | None, wanted_name: str | None, level: str) -> int | None:
    """The live cluster (or topic) a search names by id and/or name: 404 when there is none, 409
    when the id and the name name different ones."""
    ids = live.ids(level)
    if wanted_id is not None and wanted_id not in ids:
        raise ApiError(404, f"no {level} {wanted_id} in the current run")
    if wanted_name is None:
        return wanted_id
    name = wanted_name.strip().lower()
    matches = sorted(c for c in ids if live.names.get(c, "").lower() == name)
    if not matches:
        raise ApiError(404, f"no {level} named {wanted_name!r}")
    if wanted_id is None:
        return matches[0]
    if wanted_id not in matches:  # both exist, so the request conflicts with the catalogue: 409
        raise Conflict(f"{level}_id {wanted_id} and {level}_name {wanted_name!r} name different {level}s")
    return wanted_id
