"""Build the Celery app from settings; the app carries the process's store and namer, made lazily."""

from __future__ import annotations

from celery import Celery

from constellate.config import Settings
from constellate.naming import Namer
from constellate.resources import Resources
from constellate.store.base import VectorStore
from worker.tasks import MAYBE_RECLUSTER_TASK, bind


def make_celery(
    settings: Settings, redis_url: str, store: VectorStore | None = None, namer: Namer | None = None
) -> Celery:
    """The constellate Celery app: Redis broker and result backend, late acks, beat schedule.

    ``store`` lets one process share its already-open embedded store with the worker; ``namer``
    replaces the KeyBERT namer built from the settings' model.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # beat keeps its schedule file there
    app = Celery("constellate", broker=redis_url, backend=redis_url)
    longest_task = settings.recluster_max_seconds  # a task unacknowledged this long is redelivered
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": longest_task,
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": longest_task},
        beat_schedule={
            "recluster-when-new-tickets": {
                "task": MAYBE_RECLUSTER_TASK,
                "schedule": settings.recluster_interval_seconds,
            }
        },
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
        timezone="UTC",
    )
    bind(Resources(settings, store=store, namer=namer, redis_url=redis_url))
    return app


def pool_warms_itself(pool: object) -> bool:
    """Whether ``pool``'s task processes send ``worker_process_init`` (prefork's children, the solo
    pool's own process), so that they warm the kernels there; other pools (threads) warm when the
    worker is ready. Never the prefork parent: a process that has run numba's GNU OpenMP threads
    kills every child it forks later at its first parallel kernel ("Terminating: fork() called from
    a process already using GNU OpenMP"), so a child replacing a dead one could never fit."""
    from celery.concurrency.prefork import TaskPool as PreforkPool
    from celery.concurrency.solo import TaskPool as SoloPool

    return isinstance(pool, PreforkPool | SoloPool)
