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


class ClusterDetail(ClusterOut):
    exemplars: list[TicketOut] = Field(default_factory=list)
    parents: list[int] = Field(default_factory=list)
    born_run: str | None = None
    lineage: list[dict[str, Any]] = Field(default_factory=list)


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
