"""Bringing a store an older version wrote up to date: what changing an index leaves to be written."""

from __future__ import annotations

from constellate.store.base import Filter, HasId, IsEmpty, Match
from constellate.store.collection import Collection


def rank_flagged(tickets: Collection, page: int = 4096) -> int:
    """Give every flagged ticket of either slot its ``outlier_rank`` (the score /outliers orders
    by) where it has none: the labels of a store written before ranks existed. Bounded by those
    tickets; on a current store, one empty read per slot. Each write is conditional on the rank
    still being empty and the ticket still flagged, so a run or an edit that labels a ticket in
    between keeps its own. Returns how many were ranked."""
    ranked = 0
    for slot in ("a", "b"):
        flag, score, rank = (f"{slot}_{name}" for name in ("is_outlier", "outlier_score", "outlier_rank"))
        unranked = Filter(must=(Match(flag, True), IsEmpty(rank)))
        offset: str | None = None
        while True:  # offsets are point ids: tickets leaving the filter once written skip nothing
            records, offset = tickets.scroll(unranked, limit=page, offset=offset, fields=[score])
            by_score: dict[float, list[str]] = {}
            for r in records:
                value = r.payload.get(score)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    by_score.setdefault(float(value), []).append(r.id)
            for value, ids in by_score.items():
                still = Filter(must=(HasId(tuple(ids)), Match(flag, True), IsEmpty(rank)))
                tickets.set_payload_where(still, {rank: value})
                ranked += len(ids)
            if offset is None or not records:
                break
    return ranked
