"""GET /healthz and GET /openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from api.openapi import openapi_document
from api.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """200 when the store and the broker answer, 503 otherwise (no key needed)."""
    svc = services()
    try:
        svc.store.count()
        store_ok = True
    except Exception:
        store_ok = False
    try:
        broker_ok = bool(svc.redis.ping())
    except Exception:
        broker_ok = False
    ok = store_ok and broker_ok
    return jsonify({"status": "ok" if ok else "degraded", "store": store_ok, "broker": broker_ok}), (
        200 if ok else 503
    )


@bp.get("/openapi.json")
def openapi() -> Any:
    """The OpenAPI 3.1 document, generated from the pydantic models."""
    return jsonify(openapi_document())
