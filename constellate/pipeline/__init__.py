"""The recluster run as named stages (see :mod:`constellate.pipeline.run`)."""

from constellate.pipeline.label import PartResult, id_ranges, label_range
from constellate.pipeline.plan import Plan
from constellate.pipeline.run import fail, finish, prepare, recluster
from constellate.pipeline.timing import Stages

__all__ = [
    "PartResult",
    "Plan",
    "Stages",
    "fail",
    "finish",
    "id_ranges",
    "label_range",
    "prepare",
    "recluster",
]
