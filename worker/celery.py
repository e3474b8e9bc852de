"""Entry point for ``celery -A worker worker [-B]`` and ``celery -A worker beat``.

Settings are built here, once; without CONSTELLATE_REDIS_URL the data dir's embedded Valkey is used
(started if not running). With the embedded store, run the worker with ``--pool solo`` or threads:
one process may open the qdrant-edge directory.
"""

from __future__ import annotations

from constellate.config import get_settings
from constellate.embedded_redis import redis_url
from worker.factory import make_celery

settings = get_settings()
app = make_celery(settings, redis_url(settings))
