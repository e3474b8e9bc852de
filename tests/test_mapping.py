"""The map layout: a seeded sample in [0, 1]^2 where topics land apart."""

from __future__ import annotations

import numpy as np

from constellate.embedding import normalize
from constellate.mapping import map_layout
from tests.topics import topic_data


def test_topics_land_apart_on_the_map() -> None:
    _, vectors, gold = topic_data(3, 100)
    rows, coords = map_layout(vectors, max_points=5000)
    assert np.array_equal(rows, np.arange(300)) and coords.shape == (300, 2)
    assert coords.min() >= 0.0 and coords.max() <= 1.0
    centres = np.stack([coords[gold[rows] == t].mean(axis=0) for t in range(3)])
    spread = max(float(np.linalg.norm(coords[gold[rows] == t] - centres[t], axis=1).mean()) for t in range(3))
    gaps = [float(np.linalg.norm(centres[a] - centres[b])) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > 2 * spread  # each topic is its own patch


def test_sample_is_seeded_and_bounded() -> None:
    vectors = normalize(np.random.default_rng(0).normal(size=(1000, 16))).astype(np.float32)
    rows, coords = map_layout(vectors, max_points=250, seed=7)
    again_rows, again = map_layout(vectors, max_points=250, seed=7)
    assert len(rows) == 250 and len(set(rows.tolist())) == 250
    np.testing.assert_array_equal(rows, again_rows)
    np.testing.assert_allclose(coords, again)


def test_tiny_inputs() -> None:
    assert map_layout(np.zeros((0, 8), dtype=np.float32), 100)[1].shape == (0, 2)
    rows, coords = map_layout(normalize(np.eye(5, 8, dtype=np.float32)), 100)  # PCA below 200 points
    assert rows.tolist() == [0, 1, 2, 3, 4] and coords.shape == (5, 2)
    assert coords.min() >= 0.0 and coords.max() <= 1.0
    assert map_layout(np.ones((3, 8), dtype=np.float32), 0)[0].size == 0
