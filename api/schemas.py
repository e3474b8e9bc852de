"""Request and response models; the OpenAPI document is generated from them.

Patterns are written so that Python's ``re`` (what the service and schemathesis use) and
ECMAScript's (what JSON Schema prescribes) read them the same way: ``\\s`` differs between the two
(Python's also covers U+001C-U+001F and U+0085, ECMAScript's U+FEFF), so a "non-space" character
excludes all of those explicitly.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_SPACE = r"\s\u001c-\u001f\u0085\ufeff"  # white space to either regex engine (and to str.strip)
# contains a character that is not white space (search semantics, as JSON Schema's ``pattern``)
NON_BLANK = rf"[^{_SPACE}]"
NO_NUL = r"^[^\u0000]*$"
# what the ingestion check keeps: not blank, no NUL (nor U+FFFE, its stand-in for NULs in CSV)
CLEAN_TEXT = rf"^[^\u0000\ufffe]*[^{_SPACE}\u0000\ufffe][^\u0000\ufffe]*$"
CLEAN_ID = rf"^([^\u0000\ufffe]*[^{_SPACE}\u0000\ufffe][^\u0000\ufffe]*)?$"  # or empty: an id from the text
# RFC 3339 date-time (uppercase T and Z, seconds 00-59, as Python's fromisoformat reads them) with the
# year 1001-9998: any UTC offset keeps the time inside 1000-9999, which the service stores as 4 digits.
RFC3339_TIME = (
    r"^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
    r"-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
EPOCH_MIN = -30610224000  # 1000-01-01T00:00:00Z
EPOCH_MAX = 253402300799  # 9999-12-31T23:59:59Z


def _documented(pattern: str) -> Any:
    """A JSON Schema constraint for the document only; the service checks the value itself."""
    return Field(json_schema_extra={"pattern": pattern})


def _checked(pattern: str, reason: str) -> AfterValidator:
    """Refuse what does not match ``pattern`` (the one the document gives) with ``reason``."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.search(value) is None:
            raise ValueError(reason)
        return value

    return AfterValidator(check)


Name = Annotated[
    str,
    Field(min_length=1, max_length=200, json_schema_extra={"pattern": NON_BLANK}),
    _checked(NON_BLANK, "name must contain a character that is not white space"),
]


class TicketIn(BaseModel):
    """One ticket to ingest."""

    model_config = ConfigDict(extra="forbid")

    id: (
        Annotated[str, Field(json_schema_extra={"pattern": CLEAN_ID, "maxLength": 256})]
        | Annotated[int, Field(json_schema_extra={"minimum": -(2**63), "maximum": 2**63 - 1})]
        | None
    ) = Field(None, description="External id (trimmed); a hash of the text when missing or empty.")
    text: str = Field(
        ...,
        json_schema_extra={"pattern": CLEAN_TEXT},
        description="The ticket text: not blank, no NUL; at most the service's limit "
        "(CONSTELLATE_MAX_TEXT_CHARS) after trimming.",
    )
    created_at: (
        Annotated[str, Field(json_schema_extra={"pattern": RFC3339_TIME, "format": "date-time"})]
        | Annotated[float, Field(json_schema_extra={"minimum": EPOCH_MIN, "maximum": EPOCH_MAX})]
        | None
    ) = Field(
        None,
        description="RFC 3339 date-time or epoch seconds (years 1000-9999 in UTC); other ISO 8601 forms "
        "Python reads (a date alone, no offset = UTC) are accepted too. Now when missing.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class TicketBatchIn(BaseModel):
    """Several tickets at once."""

    model_config = ConfigDict(extra="forbid")

    tickets: list[TicketIn] = Field(
        ..., min_length=1, description="One id at most once (ids from the text included): a repeat is 409."
    )


class Accepted(BaseModel):
    accepted: int
    ids: list[str]


class TicketOut(BaseModel):
    ticket_id: str
    text: str
    created_at: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    cluster_id: int | None = None
    cluster_name: str | None = None
    is_outlier: bool | None = None
    outlier_score: float | None = None
    label_run: str | None = None
    assigned_by: str | None = None
    topic_id: int | None = None
    topic_name: str | None = None


class Hit(TicketOut):
    score: float


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: Annotated[str, Field(min_length=1, max_length=2000), _documented(NO_NUL)]
    cluster_id: int | None = Field(None, ge=0)
    cluster_name: Annotated[str, Field(min_length=1, max_length=500), _documented(NO_NUL)] | None = Field(
        None,
        description="Case-insensitive, trimmed; with cluster_id it must name the same cluster (else 409).",
    )
    topic_id: int | None = Field(None, ge=0, description="Only tickets of this topic's clusters.")
    topic_name: Annotated[str, Field(min_length=1, max_length=500), _documented(NO_NUL)] | None = Field(
        None,
        description="Case-insensitive, trimmed; with topic_id it must name the same topic, and a cluster "
        "given too must be in it (else 409).",
    )
    include_outliers: bool = True
    limit: int = Field(10, ge=1, le=100)


class SearchResult(BaseModel):
    query: str
    cluster_id: int | None = None
    topic_id: int | None = None
    hits: list[Hit]


class LimitQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=1000)


class ClusterOut(BaseModel):
    cluster_id: int
    name: str
    keywords: list[str] = Field(default_factory=list)
    size: int
    pinned: bool = False
    growth_24h: int = 0
    growth_7d: int = 0
    history: list[int] = Field(
        default_factory=list, description="Size at each of the last runs, oldest first."
    )
    level: Literal["cluster", "topic"] = "cluster"
    topic_id: int | None = Field(None, description="A cluster's topic.")
    children: list[int] = Field(default_factory=list, description="A topic's clusters.")


class ClusterDetail(ClusterOut):
    exemplars: list[TicketOut] = Field(default_factory=list)
    parents: list[int] = Field(default_factory=list)
    born_run: str | None = None
    lineage: list[dict[str, Any]] = Field(default_factory=list, description="Run events and human edits.")
    topic: ClusterOut | None = Field(None, description="A cluster's topic.")
    clusters: list[ClusterOut] = Field(default_factory=list, description="A topic's clusters, largest first.")


class ClusterQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["cluster", "topic"] = "cluster"


class MoveIn(BaseModel):
    """Put the cluster in the path into topic ``topic_id`` (kept by later runs while the topic lives)."""

    model_config = ConfigDict(extra="forbid")

    topic_id: int = Field(..., ge=0)


class RenameIn(BaseModel):
    """Rename a cluster; a pinned name is kept by every later run."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    pinned: bool = True


class MergeIn(BaseModel):
    """Merge cluster ``cluster_id`` into the cluster in the path (another one: itself is 409)."""

    model_config = ConfigDict(extra="forbid")

    cluster_id: int = Field(..., ge=0)


class SplitIn(BaseModel):
    """Move these tickets of the cluster in the path into a new cluster."""

    model_config = ConfigDict(extra="forbid")

    ticket_ids: list[str] = Field(..., min_length=1, max_length=1000)
    name: Name


class EditOut(BaseModel):
    """A stored human edit."""

    model_config = ConfigDict(extra="allow")

    edit_id: str
    type: str
    created_at: str


class EditList(BaseModel):
    edits: list[EditOut]


class MapPoint(BaseModel):
    ticket_id: str
    x: float
    y: float
    cluster_id: int | None = None
    is_outlier: bool | None = None
    text: str
    topic_id: int | None = Field(
        None, description="The cluster's topic now (a moved cluster's tickets follow it)."
    )


class MapOut(BaseModel):
    """A sample of tickets with the current run's 2-D coordinates."""

    run_id: str | None
    total: int
    points: list[MapPoint]


class MapQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(5000, ge=1, le=20000)


class AlertOut(BaseModel):
    """An emerging-cluster alert."""

    model_config = ConfigDict(extra="allow")

    alert_id: str
    rule: str = Field(..., description="born, growth or outlier_group")
    run_id: str
    cluster_id: int | None = None
    size: int
    reason: str
    created_at: str


class AlertList(BaseModel):
    alerts: list[AlertOut]


class ClusterList(BaseModel):
    run_id: str | None
    level: Literal["cluster", "topic"] = "cluster"
    clusters: list[ClusterOut]


class OutlierList(BaseModel):
    run_id: str | None
    outliers: list[TicketOut]


class RunOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    run_id: str
    status: str
    started_at: str | None = None
    finished_at: str | None = None


class RunList(BaseModel):
    current_run: str | None
    runs: list[RunOut]


class ReclusterIn(BaseModel):
    """Optional body of POST /recluster."""

    model_config = ConfigDict(extra="forbid")

    full: bool = Field(
        False, description="A full run (refit, relabel every ticket) even when an incremental one would do."
    )


class ReclusterAccepted(BaseModel):
    task_id: str
    status: str = "queued"


class Health(BaseModel):
    status: str
    store: bool
    broker: bool


class Error(BaseModel):
    error: str
    details: list[dict[str, Any]] | None = None
