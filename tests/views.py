"""How tests read tickets: as readers do, through the live run and its catalogue names."""

from __future__ import annotations

from typing import Any

from constellate.catalogue import NameCache


def view(store, ticket_id: str) -> dict[str, Any]:
    """One stored ticket as the API shows it."""
    return NameCache().live(store).view(store.get_ticket(ticket_id).payload)


def all_views(store) -> dict[str, dict[str, Any]]:
    """Every stored ticket as the API shows it, by ticket id."""
    live = NameCache().live(store)
    out: dict[str, dict[str, Any]] = {}
    offset = None
    while True:
        records, offset = store.scroll_tickets(limit=2048, offset=offset)
        for r in records:
            out[str(r.payload["ticket_id"])] = live.view(r.payload)
        if offset is None:
            return out
