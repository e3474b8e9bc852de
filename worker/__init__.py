"""The Celery worker shell: ``make_celery(settings, redis_url)`` and thin recluster tasks.

``celery -A worker worker -B`` finds the app in :mod:`worker.celery`.
"""

from worker.factory import MAYBE_RECLUSTER_TASK, RECLUSTER_TASK, make_celery

__all__ = ["MAYBE_RECLUSTER_TASK", "RECLUSTER_TASK", "make_celery"]
