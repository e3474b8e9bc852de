"""The ``constellate`` command: the composition root that wires settings, store and embedder.

One module per command group; importing them registers their commands on :data:`main`.
"""

from constellate.cli import bench, evaluate, ingest, recluster, serve  # noqa: F401  (registers commands)
from constellate.cli.base import main

__all__ = ["main"]
