"""Where a ticket's labels live: two slots of payload fields, one live, one being written by a run.

A recluster writes its labels into the slot readers are not using — only where they differ from
what that slot already holds — then flips the state's ``slot`` in one write, and afterwards copies
the tickets it changed into the other slot so that the two agree again for the next run. A run that
dies half-way therefore never shows readers a half-written labelling. Cluster names are not copied
onto tickets: readers look them up in the live catalogue, so a rename touches no ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from constellate.store.base import Condition, Filter, IsEmpty, Match, MatchAny

SLOTS = ("a", "b")
LABEL_FIELDS = ("cluster_id", "is_outlier", "outlier_score", "label_run", "assigned_by")
RANK = "outlier_rank"  # stored beside the labels, not shown: the score of a flagged ticket
TICKET_FIELDS = ("ticket_id", "text", "created_at", "metadata")
NOT_OUTLIER = "outlier_override"  # ticket payload field; "no" = a human said it is not an outlier
RECLUSTER = "recluster"  # assigned_by of labels a run wrote, as readers see it (not stored, below)
INGEST = "ingest"  # assigned_by of nearest-centroid guesses made at ingest (and after a switch)
# What is stored is sparse, because a keyword index's cost per point written grows with the number
# of points sharing a value (docs/scaling.md): a label a run wrote stores no ``assigned_by`` (only a
# guess stores "ingest"), and the engine adapters keep the outlier flag's filter twin only for
# outliers. Filters therefore ask "not a guess" and "not flagged" rather than for the common value.


def by_a_run(payload: Mapping[str, Any], slot: str) -> bool:
    """Whether ``payload`` holds, in ``slot``, a label a run wrote (not a guess made at ingest)."""
    cid = payload.get(slot_field(slot, "cluster_id"))
    labelled = isinstance(cid, int) and not isinstance(cid, bool)
    return labelled and payload.get(slot_field(slot, "assigned_by")) != INGEST


def slot_field(slot: str, name: str) -> str:
    """Payload key of label ``name`` in ``slot`` (e.g. ``a_cluster_id``)."""
    return f"{slot}_{name}"


def other_slot(slot: str | None) -> str:
    """The slot a new run writes into."""
    return "b" if slot == "a" else "a"


def ranked(values: Mapping[str, Any]) -> dict[str, Any]:
    """Label values as stored: where they set the flag and the score, with ``outlier_rank``, the
    score of a flagged ticket (cleared otherwise). /outliers orders the flagged tickets by it; the
    score itself, on every ticket, is not indexed (its index was half of a label write's cost)."""
    out = dict(values)
    if "is_outlier" in values and "outlier_score" in values:
        out[RANK] = values["outlier_score"] if values["is_outlier"] else None
    return out


def slot_payload(slot: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Prefix label values for ``slot`` (with the rank, see :func:`ranked`)."""
    return {slot_field(slot, k): v for k, v in ranked(values).items()}


def both_slots(values: Mapping[str, Any]) -> dict[str, Any]:
    """The same label values for both slots (with the rank, see :func:`ranked`)."""
    return {k: v for s in SLOTS for k, v in slot_payload(s, values).items()}


def slot_values(payload: Mapping[str, Any], slot: str) -> dict[str, Any]:
    """The label values a payload holds in ``slot`` (plain names)."""
    return {name: payload.get(slot_field(slot, name)) for name in LABEL_FIELDS}


def ticket_view(
    payload: Mapping[str, Any],
    slot: str | None,
    names: Mapping[int, str] | None = None,
    topics: Mapping[int, int] | None = None,
    first_run: str | None = None,
) -> dict[str, Any]:
    """A ticket as readers see it: its fields plus the live slot's labels under plain names, the
    cluster's name from the live catalogue (``names``), and its cluster's topic (``topics``: cluster
    id -> topic id; topic names are in ``names`` too). A label the first run wrote names no run on
    the ticket (see :mod:`constellate.pipeline.label`): it shows ``first_run``."""
    view = {k: payload.get(k) for k in TICKET_FIELDS}
    for name in LABEL_FIELDS:
        view[name] = payload.get(slot_field(slot, name)) if slot else None
    if slot and by_a_run(payload, slot):
        view["assigned_by"] = RECLUSTER
        view["label_run"] = view["label_run"] or first_run
    cid = view["cluster_id"]
    known = isinstance(cid, int) and not isinstance(cid, bool)
    view["cluster_name"] = (names or {}).get(cid) if known else None
    tid = (topics or {}).get(cid) if known else None
    view["topic_id"] = tid
    view["topic_name"] = (names or {}).get(tid) if tid is not None else None
    return view


def label_filter(
    slot: str | None,
    cluster_id: int | None = None,
    is_outlier: bool | None = None,
    cluster_ids: tuple[int, ...] | None = None,
) -> Filter:
    """A filter on the live labels (an impossible filter when nothing has been labelled yet);
    ``cluster_ids``: in any of these clusters (a topic's)."""
    if slot is None:
        if cluster_id is None and is_outlier is None and cluster_ids is None:
            return Filter()
        return Filter(must=(Match("ticket_id", "\x00no-labels-yet"),))
    must: list[Condition] = []
    if cluster_id is not None:
        must.append(Match(slot_field(slot, "cluster_id"), int(cluster_id)))
    if cluster_ids is not None:
        must.append(MatchAny(slot_field(slot, "cluster_id"), tuple(int(c) for c in cluster_ids)))
    flag = Match(slot_field(slot, "is_outlier"), True)  # only the flag is indexed, not its absence
    if is_outlier:
        must.append(flag)
    unflagged = (flag, IsEmpty(slot_field(slot, "cluster_id")))  # labelled, and not an outlier
    return Filter(must=tuple(must), must_not=unflagged if is_outlier is False else ())
