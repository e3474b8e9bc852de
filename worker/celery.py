"""Entry point for ``celery -A worker worker [-B]`` and ``celery -A worker beat``.

Settings are built here, once; without CONSTELLATE_REDIS_URL the data dir's embedded Valkey is used
(started if not running). With the embedded store, run the worker with ``--pool solo`` or threads:
one process may open the qdrant-edge directory. A worker warms the clustering kernels in the
background as soon as it is ready, so its first scheduled run does not pay numba's compile.
"""

from __future__ import annotations

from celery.signals import worker_ready

from constellate.config import get_settings
from constellate.embedded_redis import redis_url
from constellate.warmup import warm_up_in_background
from worker.factory import make_celery

settings = get_settings()
app = make_celery(settings, redis_url(settings))


@worker_ready.connect
def _warm_up(**_: object) -> None:
    warm_up_in_background(settings)
