"""No first-run penalty: numba kernels cached on disk, and warmed in the background at start-up.

UMAP compiles ~100 numba kernels on first use (25-50 s here). Most of umap-learn's are not declared
``cache=True``; :func:`enable_kernel_cache` turns numba's on-disk cache on for them, so only the
first process on a machine compiles and every later one loads them in about a second (measured:
a 300-ticket UMAP fit in a fresh process took 44 s before, 1.6 s after). :func:`warm_up` runs the
configured clustering stages once on a small synthetic sample in a daemon thread, so a long-lived
worker's first scheduled run finds them compiled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

from constellate.clustering.reduce import SMALL_DATA

if TYPE_CHECKING:
    from constellate.config import Settings

log = logging.getLogger(__name__)
# what the start-up's warm-up logs when it ends (the bench waits for one of them in a service's log)
WARM_DONE = "numba kernels warm"
WARM_FAILED = "warming the clustering kernels failed"

_cached = False
_lock = threading.Lock()


def enable_kernel_cache() -> None:
    """Turn on numba's on-disk cache for umap-learn's kernels (idempotent, before their first use)."""
    global _cached
    with _lock:
        if _cached:
            return
        _cached = True
        try:
            import pynndescent.distances
            import pynndescent.pynndescent_
            import pynndescent.rp_trees
            import pynndescent.sparse
            import pynndescent.utils
            from numba.core.registry import CPUDispatcher
            from umap import distances, layouts, sparse, umap_, utils
        except ImportError:  # pragma: no cover - umap is a dependency
            return
        nnd = pynndescent
        modules = (nnd.pynndescent_, nnd.distances, nnd.rp_trees, nnd.sparse, nnd.utils)
        for module in (umap_, layouts, utils, distances, sparse, *modules):
            for obj in vars(module).values():
                if isinstance(obj, CPUDispatcher):
                    try:
                        obj.enable_caching()
                    except Exception as exc:  # a kernel numba cannot cache: it compiles as before
                        log.debug("numba cannot cache %s: %s", getattr(obj, "__name__", obj), exc)


UMAP, EVOC = "umap", "evoc"  # kernel families: umap-learn/pynndescent (fit and map), EVoC/fast_hdbscan


def kernels_for(settings: Settings) -> frozenset[str]:
    """The kernel families a worker with these settings will run: those of the clustering stages
    the resolver picks for a full fit sample, and UMAP when the map is big enough to use it."""
    from constellate.clustering import build_cluster_model
    from constellate.mapping import UMAP_MIN_POINTS

    model = build_cluster_model(settings, settings.fit_sample_size)
    kinds = {UMAP} if model.reducer.name == "umap" or settings.map_points >= UMAP_MIN_POINTS else set()
    if model.clusterer.name == "evoc":
        kinds.add(EVOC)
    return frozenset(kinds)


def warm_up(
    kernels: Collection[str] = (UMAP, EVOC), fit_sample: int = SMALL_DATA + 400, seed: int = 0
) -> float:
    """Compile (or load from numba's cache) the given kernel families on synthetic data; returns
    the seconds it took.

    Both UMAP paths are exercised: the exact one (below ``SMALL_DATA`` points, the map and small
    stores) and nearest-neighbour descent (pynndescent's kernels, what a run's 20k sample and a
    5,000-point map use — a warm-up on 600 points left a 100k store's first run 52 s slower than its
    second).
    """
    from constellate.clustering import EVoCClusterer, HDBSCANClusterer, UMAPReducer
    from constellate.embedding import normalize
    from constellate.mapping import map_layout

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    centres = normalize(rng.normal(size=(8, 32)))
    x = normalize(centres[rng.integers(8, size=fit_sample)] + rng.normal(scale=0.1, size=(fit_sample, 32)))
    x = x.astype(np.float32)
    if UMAP in kernels:
        for size in (600, fit_sample):
            HDBSCANClusterer().fit_predict(UMAPReducer(seed=seed).fit_transform(x[:size]))
        map_layout(x, 300, seed)
    if EVOC in kernels:  # 266 s to compile from an empty cache here (docs/backends.md)
        EVoCClusterer(seed=seed).fit_predict(x)
    return time.perf_counter() - started


def warm_up_in_background(settings: Settings) -> threading.Thread:
    """Start :func:`warm_up` of :func:`kernels_for` ``settings`` in a daemon thread (a run that
    starts meanwhile waits on numba's lock)."""

    def work() -> None:
        try:
            kernels = kernels_for(settings)
            seconds = warm_up(kernels)
            log.info("%s: %s in %.1f s", WARM_DONE, sorted(kernels), seconds)
        except Exception:  # warming is an optimisation: a failure only costs the first run time
            log.exception(WARM_FAILED)

    thread = threading.Thread(target=work, name="warm-up", daemon=True)
    thread.start()
    return thread


def main() -> None:
    """``python -m constellate.warmup``: compile every kernel family into numba's on-disk cache once
    (the install step and the image run it)."""
    import sys

    enable_kernel_cache()
    print(f"clustering kernels compiled and cached in {warm_up():.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
