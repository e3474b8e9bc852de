"""constellate: continuous clustering of support tickets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from constellate.quick import Clustered

__all__ = ["cluster_texts"]


def cluster_texts(texts: Any, **kwargs: Any) -> Clustered:
    """Cluster texts in memory (see :func:`constellate.quick.cluster_texts`); imports lazily."""
    from constellate.quick import cluster_texts as run

    return run(texts, **kwargs)
