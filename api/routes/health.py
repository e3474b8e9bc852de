"""GET /healthz and GET /openapi.json."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify

from api.openapi import openapi_document
from api.services import services

log = logging.getLogger("constellate.api")
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """200 when the store and the broker answer, 503 otherwise (no key needed)."""
    svc = services()
    store_ok = _check("store", lambda: svc.store.count())
    broker_ok = _check("broker", lambda: svc.redis.ping())
    ok = store_ok and broker_ok
    return jsonify({"status": "ok" if ok else "degraded", "store": store_ok, "broker": broker_ok}), (
        200 if ok else 503
    )


def _check(part: str, probe: Callable[[], Any]) -> bool:
    """Run ``probe``; on failure log which part failed and why (the answer itself only says false)."""
    try:
        probe()
    except Exception as exc:
        log.warning("healthz: %s unreachable: %s: %s", part, type(exc).__name__, exc)
        return False
    return True


@bp.get("/openapi.json")
def openapi() -> Any:
    """The OpenAPI 3.1 document, generated from the pydantic models."""
    return jsonify(openapi_document())
