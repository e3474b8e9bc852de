"""The Flask API shell: ``create_app(settings, ...)`` with one blueprint per resource."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, request

from api import errors, metrics
from api.errors import error_response
from api.services import Services
from constellate.config import Settings
from constellate.embedding import Embedder
from constellate.store.base import VectorStore

OPEN_PATHS = {"/healthz", "/"}  # the page is static; its data calls carry the key


def create_app(
    settings: Settings,
    store: VectorStore | None = None,
    embedder: Embedder | None = None,
    redis_url: str | None = None,
) -> Flask:
    """Build the app; store, embedder and Redis are opened on first use unless passed in."""
    from api.routes import clusters, edits, health, page, runs, search, tickets

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    svc = Services(settings, store=store, embedder=embedder, redis_url=redis_url)
    warm = getattr(embedder, "warm_query", None)
    if warm is not None:  # the encoder's query model runs once now, not inside the first searches
        warm()
    app.extensions["constellate"] = svc
    errors.register(app)
    metrics.install(app, svc)
    key = settings.api_key.get_secret_value().encode() if settings.api_key else None

    origins = set(settings.cors_origins)

    @app.before_request
    def _require_key() -> Any:
        if key is None or request.path in OPEN_PATHS or request.path.startswith("/static/"):
            return None
        if request.method == "OPTIONS" and request.headers.get("Origin") in origins:
            return None  # a CORS preflight carries no credentials
        header = request.headers.get("Authorization", "")
        given = header[7:].encode() if header.startswith("Bearer ") else b""
        if not hmac.compare_digest(given, key):  # constant time
            return error_response(401, "missing or wrong API key (Authorization: Bearer <key>)")
        return None

    @app.after_request
    def _cors(response: Any) -> Any:
        """CORS headers only for configured origins (none by default: browsers refuse cross-origin)."""
        origin = request.headers.get("Origin")
        if origin and origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
            response.headers["Vary"] = "Origin"
        return response

    for module in (page, tickets, search, clusters, edits, runs, health):
        app.register_blueprint(module.bp)
    return app
