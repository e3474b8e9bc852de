"""The OpenAPI document, generated from the request/response models in :mod:`api.schemas`.

Hand-listing the routes here (rather than a framework like spectree or apiflask) keeps request
validation in our hands: a batch POST answers with one reason per bad item, and query strings get
400s with field-level reasons, which those frameworks' fixed error formats do not give.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api import schemas as s

# (method, path, summary, query model, body model(s), {status: response model}, path params)
ROUTES: list[
    tuple[str, str, str, type[BaseModel] | None, list[type[BaseModel]], dict[int, Any], list[str]]
] = [
    (
        "post",
        "/tickets",
        "Queue one ticket or a batch for ingestion",
        None,
        [s.TicketIn, s.TicketBatchIn],
        {202: s.Accepted, 400: s.Error, 413: s.Error, 422: s.Error},
        [],
    ),
    (
        "get",
        "/tickets/{ticket_id}",
        "A stored ticket with its cluster fields",
        None,
        [],
        {200: s.TicketOut, 404: s.Error},
        ["ticket_id"],
    ),
    (
        "get",
        "/search",
        "Semantic search, optionally within one cluster",
        s.SearchQuery,
        [],
        {200: s.SearchResult, 400: s.Error, 404: s.Error},
        [],
    ),
    ("get", "/clusters", "The live cluster catalogue", None, [], {200: s.ClusterList}, []),
    (
        "get",
        "/clusters/{cluster_id}",
        "One cluster with exemplars and lineage",
        None,
        [],
        {200: s.ClusterDetail, 404: s.Error},
        ["cluster_id"],
    ),
    (
        "get",
        "/outliers",
        "Outlier tickets, highest score first",
        s.LimitQuery,
        [],
        {200: s.OutlierList, 400: s.Error},
        [],
    ),
    (
        "patch",
        "/clusters/{cluster_id}",
        "Rename a cluster (pinned by default)",
        None,
        [s.RenameIn],
        {200: s.EditOut, 400: s.Error, 404: s.Error, 422: s.Error},
        ["cluster_id"],
    ),
    (
        "post",
        "/clusters/{cluster_id}/merge",
        "Merge another cluster into this one",
        None,
        [s.MergeIn],
        {200: s.EditOut, 400: s.Error, 404: s.Error, 422: s.Error},
        ["cluster_id"],
    ),
    (
        "post",
        "/clusters/{cluster_id}/split",
        "Split tickets off into a new cluster",
        None,
        [s.SplitIn],
        {201: s.EditOut, 400: s.Error, 404: s.Error, 422: s.Error},
        ["cluster_id"],
    ),
    (
        "post",
        "/tickets/{ticket_id}/not-outlier",
        "Clear a ticket's outlier flag for good",
        None,
        [],
        {200: s.EditOut, 404: s.Error},
        ["ticket_id"],
    ),
    ("get", "/edits", "Human edits, newest first", None, [], {200: s.EditList}, []),
    ("get", "/map", "Tickets on the 2-D map", s.MapQuery, [], {200: s.MapOut, 400: s.Error}, []),
    ("get", "/alerts", "Emerging-cluster alerts", s.LimitQuery, [], {200: s.AlertList, 400: s.Error}, []),
    ("post", "/recluster", "Queue a recluster run", None, [], {202: s.ReclusterAccepted}, []),
    ("get", "/runs", "Run records, newest first", s.LimitQuery, [], {200: s.RunList, 400: s.Error}, []),
    ("get", "/runs/{run_id}", "One run record", None, [], {200: s.RunOut, 404: s.Error}, ["run_id"]),
    ("get", "/healthz", "Store and broker reachability", None, [], {200: s.Health, 503: s.Health}, []),
]


def openapi_document() -> dict[str, Any]:
    """Build the OpenAPI 3.1 document."""
    components: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            components[name] = sub
        components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    paths: dict[str, Any] = {}
    for method, path, summary, query, bodies, responses, path_params in ROUTES:
        op: dict[str, Any] = {"summary": summary, "responses": {}}
        params = [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if p == "cluster_id" else "string"},
            }
            for p in path_params
        ]
        if query is not None:
            qs = query.model_json_schema()
            for name, prop in qs.get("properties", {}).items():
                params.append(
                    {"name": name, "in": "query", "required": name in qs.get("required", []), "schema": prop}
                )
        if params:
            op["parameters"] = params
        if bodies:
            schema = ref(bodies[0]) if len(bodies) == 1 else {"oneOf": [ref(b) for b in bodies]}
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        for status, model in responses.items():
            op["responses"][str(status)] = {
                "description": model.__doc__.strip().splitlines()[0] if model.__doc__ else model.__name__,
                "content": {"application/json": {"schema": ref(model)}},
            }
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "constellate", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
