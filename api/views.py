"""Helpers shared by the blueprints: query parsing and the live ticket view."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, validation_details
from api.schemas import TicketOut
from constellate.labels import ticket_view

M = TypeVar("M", bound=BaseModel)


def parse_query(model: type[M]) -> M:
    """Validate the query string against ``model`` (400 with reasons on failure)."""
    args: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise ApiError(400, f"query parameter {key!r} given more than once")
        args[key] = values[0]
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise ApiError(400, "invalid query parameters", validation_details(exc)) from exc


def ticket_out(payload: dict[str, Any], slot: str | None) -> dict[str, Any]:
    """The public form of a stored ticket."""
    view = ticket_view(payload, slot)
    view["metadata"] = view.get("metadata") or {}
    return TicketOut.model_validate(view).model_dump()
