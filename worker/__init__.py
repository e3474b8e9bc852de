"""The Celery worker shell: ``make_celery(settings, redis_url)`` and thin recluster tasks.

``celery -A worker worker -B`` finds the app in :mod:`worker.celery`.
"""

from worker.factory import make_celery
from worker.tasks import MAYBE_RECLUSTER_TASK, RECLUSTER_TASK

__all__ = ["MAYBE_RECLUSTER_TASK", "RECLUSTER_TASK", "make_celery"]
