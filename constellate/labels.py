"""Where a ticket's labels live: two slots of payload fields, one live, one being written by a run.

A recluster writes its labels into the slot readers are not using, then flips the state's ``slot``
in one write. A run that dies half-way therefore never shows readers a half-written labelling.
"""

from __future__ import annotations

from typing import Any

from constellate.store.base import Condition, Filter, Match

SLOTS = ("a", "b")
LABEL_FIELDS = ("cluster_id", "cluster_name", "is_outlier", "outlier_score", "label_run", "assigned_by")
TICKET_FIELDS = ("ticket_id", "text", "created_at", "metadata")


def slot_field(slot: str, name: str) -> str:
    """Payload key of label ``name`` in ``slot`` (e.g. ``a_cluster_id``)."""
    return f"{slot}_{name}"


def other_slot(slot: str | None) -> str:
    """The slot a new run writes into."""
    return "b" if slot == "a" else "a"


def slot_payload(slot: str, values: dict[str, Any]) -> dict[str, Any]:
    """Prefix label values for ``slot``."""
    return {slot_field(slot, k): v for k, v in values.items()}


def ticket_view(payload: dict[str, Any], slot: str | None) -> dict[str, Any]:
    """A ticket as readers see it: its fields plus the live slot's labels under plain names."""
    view = {k: payload.get(k) for k in TICKET_FIELDS}
    for name in LABEL_FIELDS:
        view[name] = payload.get(slot_field(slot, name)) if slot else None
    return view


def label_filter(slot: str | None, cluster_id: int | None = None, is_outlier: bool | None = None) -> Filter:
    """A filter on the live labels (an impossible filter when nothing has been labelled yet)."""
    if slot is None:
        if cluster_id is None and is_outlier is None:
            return Filter()
        return Filter(must=(Match("ticket_id", "\x00no-labels-yet"),))
    must: list[Condition] = []
    if cluster_id is not None:
        must.append(Match(slot_field(slot, "cluster_id"), int(cluster_id)))
    if is_outlier is not None:
        must.append(Match(slot_field(slot, "is_outlier"), bool(is_outlier)))
    return Filter(must=tuple(must))
