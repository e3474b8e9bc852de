"""Helpers shared by the blueprints: query parsing and the live ticket view."""

from __future__ import annotations

import json
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from flask import request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, validation_details
from api.schemas import TicketOut

M = TypeVar("M", bound=BaseModel)


def parse_query(model: type[M]) -> M:
    """Validate the query string against ``model`` (400 with reasons on failure)."""
    try:
        unquote_to_bytes(request.query_string.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "query string is not valid UTF-8") from None
    args: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise ApiError(400, f"query parameter {key!r} given more than once")
        if "\x00" in values[0]:
            raise ApiError(400, f"query parameter {key!r} contains a NUL byte")
        args[key] = values[0]
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise ApiError(400, "invalid query parameters", validation_details(exc)) from exc


def json_body() -> Any:
    """The request's JSON body, or a 400 saying what is wrong with it (413 above the size limit)."""
    if not request.is_json:
        raise ApiError(400, "body must be JSON (Content-Type: application/json)")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "empty body; send a JSON object")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body is not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise ApiError(400, "invalid JSON: nested too deeply") from None


def parse_body(model: type[M], optional: bool = False) -> M:
    """The JSON body validated against ``model`` (422 with reasons); ``optional``: no body = defaults."""
    if optional and not request.get_data(cache=True).strip():
        return model()
    try:
        return model.model_validate(json_body())
    except ValidationError as exc:
        raise ApiError(422, "invalid request", validation_details(exc)) from None


def ticket_out(view: dict[str, Any]) -> dict[str, Any]:
    """The public form of a ticket view (:meth:`constellate.catalogue.Live.view`)."""
    return TicketOut.model_validate({**view, "metadata": view.get("metadata") or {}}).model_dump()
