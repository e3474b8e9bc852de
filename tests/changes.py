"""How tests give an incremental run something to do: a store where nothing changed is skipped."""

from __future__ import annotations

from constellate.assign import CentroidAssigner
from constellate.tickets import Ticket, point_id


def touch(store, ticket: Ticket) -> None:
    """Re-ingest ``ticket`` with its stored vector, as the consumer would: its labels become guesses."""
    vector = store.get_points([point_id(ticket.id)], with_vector=True)[0].vector[None, :]
    store.upsert_tickets([ticket], vector, CentroidAssigner(store).label(vector)[1])
