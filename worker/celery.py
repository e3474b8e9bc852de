"""Entry point for ``celery -A worker worker [-B]`` and ``celery -A worker beat``.

Settings are built here, once; without CONSTELLATE_REDIS_URL the data dir's embedded Valkey is used
(started if not running). With the embedded store, run the worker with ``--pool solo`` or threads:
one process may open the qdrant-edge directory. The process that runs the tasks warms the
clustering kernels in the background at its start (:func:`worker.factory.pool_warms_itself`), so
the first scheduled run does not pay numba's compile.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init, worker_ready

from constellate.config import get_settings
from constellate.embedded_redis import redis_url
from constellate.warmup import warm_up_in_background
from worker.factory import make_celery, pool_warms_itself

settings = get_settings()
app = make_celery(settings, redis_url(settings))


@worker_process_init.connect
def _warm_up_pool_process(**_: object) -> None:
    warm_up_in_background(settings)  # a prefork child, or the solo pool's one process


@worker_ready.connect
def _warm_up_thread_pool(sender: Any = None, **_: object) -> None:
    if not pool_warms_itself(getattr(sender, "pool", None)):
        warm_up_in_background(settings)
