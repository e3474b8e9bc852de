"""Count stage: sizes, growth and outliers of the labelling in a slot, counted by the engine.

Facets and counts on indexed fields, so neither a full nor an incremental run has to see every
ticket to know its clusters' sizes; the outlier sample for the alert is a seeded window of the
flagged tickets (point ids are hashes: a uniform sample).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from constellate.labels import slot_field
from constellate.store.base import DateRange, Filter, Match, VectorStore

OUTLIER_SAMPLE = 5000  # outlier point ids handed to the outlier-group alert
_NAMESPACE = uuid.UUID("6d0f3b2a-4c1e-5a7b-9e8d-2f1a3b4c5d6e")


@dataclass
class Counts:
    """Tickets per cluster (in all, created in the last 24 h and 7 days), outliers and a sample of them."""

    n: int = 0  # labelled tickets
    outliers: int = 0
    sizes: dict[int, int] = field(default_factory=dict)
    day: dict[int, int] = field(default_factory=dict)
    week: dict[int, int] = field(default_factory=dict)
    outlier_ids: list[str] = field(default_factory=list)


def count_labels(
    store: VectorStore, slot: str, clusters: int, seed: int, now: datetime | None = None
) -> Counts:
    """What the labels in ``slot`` add up to (``clusters``: how many distinct ids to expect)."""
    now = now or datetime.now(UTC)
    key = slot_field(slot, "cluster_id")
    limit = clusters + 1000

    def since(delta: timedelta) -> Filter:
        return Filter(must=(DateRange("created_at", gte=(now - delta).strftime("%Y-%m-%dT%H:%M:%SZ")),))

    def facet(flt: Filter | None) -> dict[int, int]:
        return {int(k): int(v) for k, v in store.facet(key, flt, limit=limit).items()}

    flagged = Filter(must=(Match(slot_field(slot, "is_outlier"), True),))
    sizes = facet(None)
    return Counts(
        n=sum(sizes.values()),
        outliers=store.count(flagged),
        sizes=sizes,
        day=facet(since(timedelta(days=1))),
        week=facet(since(timedelta(days=7))),
        outlier_ids=outlier_sample(store, flagged, seed),
    )


def outlier_sample(store: VectorStore, flagged: Filter, seed: int, size: int = OUTLIER_SAMPLE) -> list[str]:
    """Up to ``size`` flagged point ids from a seeded start in id order, wrapping around once."""
    start = str(uuid.uuid5(_NAMESPACE, f"outliers:{seed}"))
    ids: list[str] = []
    for offset, stop in ((start, None), (None, start)):
        while len(ids) < size:
            records, offset = store.scroll_tickets(
                flagged, limit=min(2048, size - len(ids)), offset=offset, fields=[]
            )
            ids.extend(r.id for r in records if stop is None or r.id < stop)
            if offset is None or not records or (stop is not None and records[-1].id >= stop):
                break
    return ids[:size]
