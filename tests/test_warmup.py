"""Which kernels a worker warms at start-up."""

from __future__ import annotations

import logging

from constellate.config import Settings
from constellate.warmup import WARM_DONE, kernels_for, warm_up_in_background


def test_warm_up_warms_the_kernels_the_settings_will_use() -> None:
    assert kernels_for(Settings()) == {"evoc", "umap"}  # EVoC's fit, UMAP's map
    assert kernels_for(Settings(map_points=100)) == {"evoc"}
    assert kernels_for(Settings(algorithm="hdbscan", map_points=100)) == {"umap"}
    # a worker that only ever fits PCA + HDBSCAN and draws a PCA map compiles nothing
    assert kernels_for(Settings(umap_min_points=1_000_000, map_points=100)) == frozenset()


def test_the_background_warm_up_logs_the_line_that_says_it_is_done(caplog) -> None:
    # the bench waits for this line in a service's log before it measures (a drifted wording made
    # it wait out its whole timeout)
    settings = Settings(umap_min_points=1_000_000, map_points=100)  # nothing to compile: quick
    with caplog.at_level(logging.INFO, logger="constellate.warmup"):
        warm_up_in_background(settings).join(timeout=60)
    assert any(WARM_DONE in r.getMessage() for r in caplog.records), caplog.text
