"""The ticket record and its stable point id."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Fixed namespace: the same external id maps to the same Qdrant point id forever.
TICKET_NAMESPACE = uuid.UUID("6f1d2c4e-3b8a-5e0f-9c7d-2a4b6c8d0e1f")


@dataclass(frozen=True)
class Ticket:
    """One support ticket as read from a file or the API (not yet embedded)."""

    id: str
    text: str
    created_at: str = field(default_factory=lambda: utc_now_iso())
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int | None = None  # ingestion order: of two writes of one ticket the larger version wins


def version_now() -> int:
    """A ticket version from the clock, for a write that came without one: the scale of
    :func:`constellate.stream.entry_version` (milliseconds x 1024), exact in a float64."""
    return time.time_ns() // 1_000_000 * 1024


def point_id(ticket_id: str) -> str:
    """Qdrant point id of a ticket: UUIDv5 of its external id, so re-ingesting updates in place."""
    return str(uuid.uuid5(TICKET_NAMESPACE, ticket_id))


def text_id(text: str) -> str:
    """A stable id for a ticket that came without one: a hash of its text."""
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def utc_now_iso() -> str:
    """Current UTC time as an RFC 3339 string with a ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now_precise() -> str:
    """Current UTC time in RFC 3339 with microseconds: orders records made one after another (two
    edits within one millisecond tied, and a replay could apply the older one last)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def normalize_timestamp(value: Any) -> str:
    """Parse an ISO 8601 string or epoch seconds into RFC 3339 UTC; raise ValueError if not a time."""
    if isinstance(value, bool):
        raise ValueError("created_at must be an ISO 8601 string or epoch seconds")
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(float(value), tz=UTC)
    elif isinstance(value, str):
        raw = value.strip()
        if raw.endswith("Z"):
            raw = raw[:-1] + "+00:00"
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    else:
        raise ValueError("created_at must be an ISO 8601 string or epoch seconds")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
