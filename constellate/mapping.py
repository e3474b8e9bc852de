"""The 2-D map of tickets: a seeded sample laid out by UMAP (PCA when small), scaled to [0, 1]."""

from __future__ import annotations

import numpy as np

from constellate.clustering import PCAReducer, UMAPReducer

UMAP_MIN_POINTS = 200
MIN_DIST = 0.3  # spreads each cluster into a readable patch (clustering itself uses 0)
# umap's own count for large data; below 10,000 points it would run 500 (4.2 s vs 1.8 s for the
# 5,000-point map here, on every run, for a picture that is no clearer)
MAP_EPOCHS = 200


def map_layout(vectors: np.ndarray, max_points: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``vectors`` placed on the map and their (x, y) in [0, 1].

    At most ``max_points`` rows (a seeded sample) so the page stays light at any size; tickets off
    the sample are still searchable and listed, just not drawn.
    """
    n = vectors.shape[0]
    if n == 0 or max_points == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.float32)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, max_points, replace=False)) if n > max_points else np.arange(n)
    x = vectors[rows]
    if len(rows) >= UMAP_MIN_POINTS:
        umap_2d = UMAPReducer(n_components=2, seed=seed, min_dist=MIN_DIST, n_epochs=MAP_EPOCHS)
        coords = umap_2d.fit_transform(PCAReducer(50, seed).fit_transform(x))
    elif len(rows) >= 3:
        coords = PCAReducer(2, seed).fit_transform(x)
    else:
        coords = np.zeros((len(rows), 2), dtype=np.float32)
    if coords.shape[1] < 2:
        coords = np.hstack([coords, np.zeros((len(rows), 2 - coords.shape[1]), dtype=np.float32)])
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return rows, ((coords - low) / span).astype(np.float32)
