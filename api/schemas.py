"""Request and response models; the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TicketIn(BaseModel):
    """One ticket to ingest."""

    model_config = ConfigDict(extra="forbid")

    id: str | int | None = Field(None, description="External id; a hash of the text when missing.")
    text: str = Field(..., description="The ticket text (not empty).")
    created_at: str | float | int | None = Field(None, description="ISO 8601 or epoch seconds.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class TicketBatchIn(BaseModel):
    """Several tickets at once."""

    model_config = ConfigDict(extra="forbid")

    tickets: list[TicketIn]


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


class Hit(TicketOut):
    score: float


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(..., min_length=1, max_length=2000)
    cluster_id: int | None = Field(None, ge=0)
    cluster_name: str | None = Field(None, min_length=1, max_length=500)
    include_outliers: bool = True
    limit: int = Field(10, ge=1, le=100)


class SearchResult(BaseModel):
    query: str
    cluster_id: int | None = None
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


class ClusterDetail(ClusterOut):
    exemplars: list[TicketOut] = Field(default_factory=list)
    parents: list[int] = Field(default_factory=list)
    born_run: str | None = None
    lineage: list[dict[str, Any]] = Field(default_factory=list, description="Run events and human edits.")


class RenameIn(BaseModel):
    """Rename a cluster; a pinned name is kept by every later run."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200)
    pinned: bool = True


class MergeIn(BaseModel):
    """Merge cluster ``cluster_id`` into the cluster in the path."""

    model_config = ConfigDict(extra="forbid")

    cluster_id: int = Field(..., ge=0)


class SplitIn(BaseModel):
    """Move these tickets of the cluster in the path into a new cluster."""

    model_config = ConfigDict(extra="forbid")

    ticket_ids: list[str] = Field(..., min_length=1, max_length=1000)
    name: str = Field(..., min_length=1, max_length=200)


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
