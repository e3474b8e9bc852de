"""POST /tickets (queue for ingestion) and GET /tickets/<id>."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from pydantic import ValidationError

from api.errors import ApiError, validation_details
from api.schemas import TicketIn
from api.services import services
from api.views import json_body, ticket_out
from constellate.datasets import FieldMap, ticket_from_row
from constellate.stream import publish
from constellate.tickets import Ticket

bp = Blueprint("tickets", __name__)


@bp.post("/tickets")
def post_tickets() -> Any:
    """Validate one ticket or ``{"tickets": [...]}`` and queue them; 202 with their ids.

    A batch is all or nothing: any bad item refuses the request with a reason per item.
    """
    svc = services()
    body = json_body()
    if isinstance(body, dict) and "tickets" in body:
        extra = sorted(set(body) - {"tickets"})
        if extra:
            raise ApiError(422, "unknown fields", [{"field": f, "reason": "not allowed"} for f in extra])
        items = body["tickets"]
        if not isinstance(items, list) or not items:
            raise ApiError(422, "'tickets' must be a non-empty list")
    elif isinstance(body, dict):
        items = [body]
    else:
        raise ApiError(400, "body must be a JSON object")
    if len(items) > svc.settings.max_batch:
        raise ApiError(413, f"{len(items)} tickets in one request; the limit is {svc.settings.max_batch}")

    tickets: list[Ticket] = []
    errors: list[dict[str, Any]] = []
    repeats: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    too_long = False
    for index, item in enumerate(items):
        try:
            parsed = TicketIn.model_validate(item)
            ticket = ticket_from_row(parsed.model_dump(), FieldMap(), svc.settings.max_text_chars)
        except ValidationError as exc:
            errors.extend({"index": index, **d} for d in validation_details(exc))
            continue
        except ValueError as exc:
            too_long = too_long or "limit is" in str(exc)
            errors.append(
                {"index": index, "field": "text" if "text" in str(exc) else None, "reason": str(exc)}
            )
            continue
        if ticket.id in seen:
            reason = f"id {ticket.id!r} repeats item {seen[ticket.id]}; one batch may hold an id once"
            repeats.append({"index": index, "field": "id", "reason": reason})
            continue
        seen[ticket.id] = index
        tickets.append(ticket)
    if errors:
        status = 413 if too_long and all("limit is" in e["reason"] for e in errors) else 422
        raise ApiError(status, "invalid tickets; nothing was accepted", sorted(errors + repeats, key=_index))
    if repeats:
        # every item is valid on its own (the schema cannot say ids are unique across items): 409
        raise ApiError(409, "one ticket twice in a batch; nothing was accepted", repeats)
    publish(svc.redis, tickets)
    return jsonify({"accepted": len(tickets), "ids": [t.id for t in tickets]}), 202


def _index(error: dict[str, Any]) -> int:
    return int(error["index"])


@bp.get("/tickets/<path:ticket_id>")
def get_ticket(ticket_id: str) -> Any:
    """One stored ticket with its live cluster fields."""
    svc = services()
    record = svc.store.get_ticket(ticket_id)
    if record is None:
        raise ApiError(404, f"no ticket {ticket_id!r} (it may still be queued for ingestion)")
    return jsonify(ticket_out(svc.live().view(record.payload)))
