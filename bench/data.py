"""What the benchmark sections share: the reporting callback, a timer, and scaled-up stores of real vectors."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from constellate.config import Settings
from constellate.embedding import normalize
from constellate.tickets import Ticket

Say = Callable[[str], None]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and the seconds it took."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def scale_vectors(base: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vectors: the real ones, then copies with small jitter (and the row each came from)."""
    rows = np.arange(n) % len(base)
    vectors = base[rows].copy()
    if n > len(base):
        rng = np.random.default_rng(seed)
        extra = slice(len(base), n)
        vectors[extra] += rng.normal(scale=0.02, size=(n - len(base), base.shape[1])).astype(np.float32)
        vectors = normalize(vectors)
    return vectors, rows


def cached_vectors(texts: Sequence[str], embed: Callable[[list[str]], np.ndarray], tag: str) -> np.ndarray:
    """``embed(texts)``, kept under the temp dir keyed by ``tag`` and the texts (the scale series
    measures runs, not the encoder: a rerun need not embed Banking77 again)."""
    import hashlib
    import tempfile

    key = hashlib.sha256(("\n".join(texts) + tag).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "constellate-bench" / f"{tag}-{key}.npy"
    if path.exists():
        return np.load(path)
    vectors = np.asarray(embed(list(texts)), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def fill_store(data_dir: Path, vectors: np.ndarray, texts: Sequence[str], rows: np.ndarray) -> None:
    """Load ``vectors`` as tickets into the embedded store under ``data_dir``."""
    from constellate.store import edge_store

    store = edge_store(Settings(data_dir=data_dir))
    try:
        store.ensure_collections(vectors.shape[1])
        for start in range(0, len(vectors), 5000):
            end = min(len(vectors), start + 5000)
            batch = [Ticket(id=f"x{i}", text=texts[rows[i]]) for i in range(start, end)]
            store.upsert_tickets(batch, vectors[start:end])
        store.optimize()
    finally:
        store.close()
