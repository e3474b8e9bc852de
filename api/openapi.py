"""The OpenAPI document, generated from the request/response models in :mod:`api.schemas`.

Hand-listing the routes here (rather than a framework like spectree or apiflask) keeps request
validation in our hands: a batch POST answers with one reason per bad item, and query strings get
400s with field-level reasons, which those frameworks' fixed error formats do not give.

The document says what the service does (tests/api/test_hostile.py checks it with schemathesis):
what the schema can express is in the schema, so a schema-valid request is never refused as
invalid; what it cannot (a request that conflicts with the current state, or with itself) is a
documented 409. With ``CONSTELLATE_API_KEY`` set every operation but the open ones answers 401
without ``Authorization: Bearer <key>``; the open ones say ``security: []``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_app_context
from pydantic import BaseModel

from api import OPEN_PATHS
from api import schemas as s
from constellate.config import Settings


@dataclass(frozen=True)
class Media:
    """A non-JSON response: media type -> JSON Schema of the content."""

    description: str
    content: dict[str, dict[str, Any]]


# A response is a model (JSON; described by its docstring or by STATUS_TEXT), (model, description), or Media.
Response = type[BaseModel] | tuple[type[BaseModel], str] | Media

STATUS_TEXT = {
    400: "Malformed request: a body that is not a JSON object, or bad query parameters",
    401: "Missing or wrong API key (only when CONSTELLATE_API_KEY is set)",
    404: "No such resource",
    409: "Well formed, but conflicts with the current state (or with itself)",
    413: "Body over CONSTELLATE_MAX_BODY_BYTES",
    422: "Invalid body: a reason per field (per item for a batch)",
}
BODY_ERRORS: dict[int, Response] = {400: s.Error, 413: s.Error, 422: s.Error}
TEXT = {"type": "string"}


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    summary: str
    responses: dict[int, Response]
    query: type[BaseModel] | None = None
    bodies: tuple[type[BaseModel], ...] = ()
    body_required: bool = True
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)


CLUSTER_ID = {"cluster_id": {"type": "integer", "minimum": 0}}
TICKET_ID = {"ticket_id": {"type": "string", "minLength": 1}}

ROUTES: list[Op] = [
    Op(
        "post",
        "/tickets",
        "Queue one ticket or a batch for ingestion",
        {
            202: s.Accepted,
            **BODY_ERRORS,
            409: (s.Error, "The batch holds one ticket id twice (ids made from the text included)"),
            413: (s.Error, "Body over CONSTELLATE_MAX_BODY_BYTES, or texts over the text limit"),
        },
        bodies=(s.TicketIn, s.TicketBatchIn),
    ),
    Op(
        "get",
        "/tickets/{ticket_id}",
        "A stored ticket with its cluster fields",
        {200: s.TicketOut, 404: s.Error},
        path_params=TICKET_ID,
    ),
    Op(
        "get",
        "/search",
        "Semantic search, optionally within one cluster",
        {
            200: s.SearchResult,
            400: s.Error,
            404: (s.Error, "No such cluster (cluster_id or cluster_name)"),
            409: (s.Error, "cluster_id and cluster_name name two different clusters"),
        },
        query=s.SearchQuery,
    ),
    Op(
        "get",
        "/clusters",
        "The live catalogue at one level (clusters, or the topics they are grouped into)",
        {200: s.ClusterList, 400: s.Error},
        query=s.ClusterQuery,
    ),
    Op(
        "get",
        "/clusters/{cluster_id}",
        "One cluster or topic with exemplars, lineage, and its topic or its clusters",
        {200: s.ClusterDetail, 404: s.Error},
        path_params=CLUSTER_ID,
    ),
    Op(
        "get",
        "/outliers",
        "Outlier tickets, highest score first",
        {200: s.OutlierList, 400: s.Error},
        query=s.LimitQuery,
    ),
    Op(
        "patch",
        "/clusters/{cluster_id}",
        "Rename a cluster or a topic (pinned by default)",
        {200: s.EditOut, **BODY_ERRORS, 404: s.Error},
        bodies=(s.RenameIn,),
        path_params=CLUSTER_ID,
    ),
    Op(
        "post",
        "/clusters/{cluster_id}/merge",
        "Merge another cluster into this one",
        {
            200: s.EditOut,
            **BODY_ERRORS,
            404: s.Error,
            409: (s.Error, "The body names the cluster in the path: a cluster cannot merge into itself"),
        },
        bodies=(s.MergeIn,),
        path_params=CLUSTER_ID,
    ),
    Op(
        "post",
        "/clusters/{cluster_id}/split",
        "Split tickets off into a new cluster",
        {
            201: s.EditOut,
            **BODY_ERRORS,
            404: (s.Error, "No such cluster or ticket"),
            409: (s.Error, "A ticket is not in this cluster, or the split would leave the cluster empty"),
        },
        bodies=(s.SplitIn,),
        path_params=CLUSTER_ID,
    ),
    Op(
        "post",
        "/clusters/{cluster_id}/move",
        "Put a cluster into another topic",
        {
            200: s.EditOut,
            **BODY_ERRORS,
            404: (s.Error, "No such cluster or topic"),
            409: (s.Error, "The path names a topic, the body a cluster, or the cluster is in that topic"),
        },
        bodies=(s.MoveIn,),
        path_params=CLUSTER_ID,
    ),
    Op(
        "post",
        "/tickets/{ticket_id}/not-outlier",
        "Clear a ticket's outlier flag for good",
        {200: s.EditOut, 404: s.Error},
        path_params=TICKET_ID,
    ),
    Op("get", "/edits", "Human edits, newest first", {200: s.EditList}),
    Op("get", "/map", "Tickets on the 2-D map", {200: s.MapOut, 400: s.Error}, query=s.MapQuery),
    Op("get", "/alerts", "Emerging-cluster alerts", {200: s.AlertList, 400: s.Error}, query=s.LimitQuery),
    Op(
        "post",
        "/recluster",
        "Queue a recluster run (incremental or full)",
        {202: s.ReclusterAccepted, 400: s.Error, 422: s.Error},
        bodies=(s.ReclusterIn,),
        body_required=False,
    ),
    Op("get", "/runs", "Run records, newest first", {200: s.RunList, 400: s.Error}, query=s.LimitQuery),
    Op(
        "get",
        "/runs/{run_id}",
        "One run record",
        {200: s.RunOut, 404: s.Error},
        path_params={"run_id": {"type": "string", "minLength": 1}},
    ),
    Op("get", "/healthz", "Store and broker reachability", {200: s.Health, 503: s.Health}),
    Op(
        "get",
        "/",
        "The page (catalogue, map, search, outliers, runs, alerts, edits); it asks for the key",
        {200: Media("The page", {"text/html": {"schema": TEXT}})},
    ),
    Op(
        "get",
        "/static/{name}",
        "A file of the page",
        {
            200: Media(
                "The file, typed by its suffix",
                {
                    t: {"schema": TEXT}
                    for t in ("text/html", "text/css", "text/javascript", "application/javascript")
                },
            ),
            404: s.Error,
        },
        path_params={"name": {"type": "string", "minLength": 1}},
    ),
    Op(
        "get",
        "/openapi.json",
        "This document",
        {200: Media("The OpenAPI 3.1 document", {"application/json": {"schema": {"type": "object"}}})},
    ),
    Op(
        "get",
        "/metrics",
        "Prometheus metrics",
        {200: Media("Prometheus text exposition", {"text/plain": {"schema": TEXT}})},
    ),
]


def is_open(path: str) -> bool:
    """Whether the service answers ``path`` without the key (the rule ``create_app`` applies)."""
    return path in OPEN_PATHS or path.startswith("/static/")


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document; limits come from ``settings`` (in a request, the app's)."""
    if settings is None and has_app_context() and "constellate" in current_app.extensions:
        settings = current_app.extensions["constellate"].settings
    components: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = copy.deepcopy(model.model_json_schema(ref_template="#/components/schemas/{model}"))
        for name, sub in schema.pop("$defs", {}).items():
            components[name] = sub
        components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def response(status: int, spec: Response) -> dict[str, Any]:
        if isinstance(spec, Media):
            return {"description": spec.description, "content": spec.content}
        model, description = spec if isinstance(spec, tuple) else (spec, None)
        if description is None:
            doc = (model.__doc__ or "").strip()
            description = STATUS_TEXT.get(status) or (doc.splitlines()[0] if doc else model.__name__)
        return {"description": description, "content": {"application/json": {"schema": ref(model)}}}

    paths: dict[str, Any] = {}
    for route in ROUTES:
        op: dict[str, Any] = {"summary": route.summary, "responses": {}}
        params = [
            {"name": name, "in": "path", "required": True, "schema": schema}
            for name, schema in route.path_params.items()
        ]
        if route.query is not None:
            qs = route.query.model_json_schema()
            for name, prop in qs.get("properties", {}).items():
                params.append(
                    {"name": name, "in": "query", "required": name in qs.get("required", []), "schema": prop}
                )
        if params:
            op["parameters"] = params
        if route.bodies:
            bodies = route.bodies
            schema = ref(bodies[0]) if len(bodies) == 1 else {"oneOf": [ref(b) for b in bodies]}
            op["requestBody"] = {
                "required": route.body_required,
                "content": {"application/json": {"schema": schema}},
            }
        responses = dict(route.responses)
        if is_open(route.path):
            op["security"] = []
        else:
            responses[401] = s.Error
        for status in sorted(responses):
            op["responses"][str(status)] = response(status, responses[status])
        paths.setdefault(route.path, {})[route.method] = op
    if settings is not None:  # the service's limits, so a schema-valid batch is never too large
        components["TicketIn"]["properties"]["text"]["maxLength"] = settings.max_text_chars
        components["TicketBatchIn"]["properties"]["tickets"]["maxItems"] = settings.max_batch
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "constellate",
            "version": "0.1.0",
            "description": "With CONSTELLATE_API_KEY set, every operation without `security: []` needs "
            "`Authorization: Bearer <key>` and answers 401 without it. Errors are "
            '`{"error": ..., "details": [...]}`.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
