"""Which kernels a worker warms at start-up."""

from __future__ import annotations

from constellate.config import Settings
from constellate.warmup import kernels_for


def test_warm_up_warms_the_kernels_the_settings_will_use() -> None:
    assert kernels_for(Settings()) == {"evoc", "umap"}  # EVoC's fit, UMAP's map
    assert kernels_for(Settings(map_points=100)) == {"evoc"}
    assert kernels_for(Settings(algorithm="hdbscan", map_points=100)) == {"umap"}
    # a worker that only ever fits PCA + HDBSCAN and draws a PCA map compiles nothing
    assert kernels_for(Settings(umap_min_points=1_000_000, map_points=100)) == frozenset()
