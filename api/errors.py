"""JSON everywhere: every error is ``{"error": reason, "details": [...]?}`` with no stack trace."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from constellate.exceptions import Conflict, InputError, NotFound

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a JSON reason."""

    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def input_error_status(exc: InputError) -> int:
    """404 for what does not exist, 409 for what conflicts with the current state, else 422."""
    if isinstance(exc, NotFound):
        return 404
    return 409 if isinstance(exc, Conflict) else 422


def error_response(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Any:
    body: dict[str, Any] = {"error": message}
    if details is not None:
        body["details"] = details
    return jsonify(body), status


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as ``{"field", "reason"}`` without echoing the input back."""
    return [{"field": ".".join(str(p) for p in e["loc"]) or None, "reason": e["msg"]} for e in exc.errors()]


def register(app: Flask) -> None:
    """Install the JSON error handlers."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return error_response(exc.status, exc.message, exc.details)

    @app.errorhandler(InputError)
    def _input_error(exc: InputError) -> Any:
        return error_response(input_error_status(exc), str(exc))

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Any:
        return error_response(422, "invalid request", validation_details(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        messages = {413: f"request body too large (limit {app.config.get('MAX_CONTENT_LENGTH')} bytes)"}
        return error_response(exc.code or 500, messages.get(exc.code or 0, exc.description or exc.name))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error")
        return error_response(500, "internal error")
