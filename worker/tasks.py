"""Thin tasks: take the run lock, call constellate.recluster, say why a trigger was skipped.

The tasks are ``shared_task``s that reach the process's resources through :func:`bind`, which
``make_celery`` calls (one worker app per process; tests bind each app they build). Looking the
resources up on ``task.app`` failed in ``constellate up``, where the API's enqueueing client is a
second Celery app in the same process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import shared_task

from constellate.recluster import recluster
from constellate.run_lock import RunLock

if TYPE_CHECKING:
    from constellate.resources import Resources

log = logging.getLogger(__name__)

RECLUSTER_TASK = "constellate.recluster"
MAYBE_RECLUSTER_TASK = "constellate.maybe_recluster"


def run_recluster(res: Resources) -> dict[str, Any]:
    """Recluster now unless another run holds the lock."""
    lock = RunLock(res.redis, timeout=res.settings.recluster_lock_seconds)
    if not lock.acquire():
        reason = f"skipped: run {lock.holder() or '?'} holds the recluster lock"
        log.info(reason)
        return {"status": "skipped", "reason": reason}
    lock.keep_alive()
    try:
        run = recluster(
            res.store,
            res.settings,
            namer=res.namer,
            run_id=lock.run_id,
            progress=log.info,
            notifier=res.notifier,
        )
    finally:
        lock.release()
    return {k: v for k, v in run.items() if k != "events"}


def maybe_recluster(res: Resources) -> dict[str, Any]:
    """Beat's trigger: recluster only when enough tickets arrived since the last run."""
    state = res.store.get_state()
    new = res.store.count() - int(state.get("tickets_at_run", 0))
    needed = res.settings.recluster_min_new_tickets
    if state.get("current_run") and new < needed:
        return {"status": "skipped", "reason": f"{new} new tickets since the last run; {needed} needed"}
    return run_recluster(res)


_bound: list[Resources] = []


def bind(res: Resources) -> None:
    """Make ``res`` the resources the tasks in this process use."""
    _bound[:] = [res]


def _resources() -> Resources:
    if not _bound:
        raise RuntimeError("no resources bound: build the app with worker.make_celery")
    return _bound[0]


@shared_task(name=RECLUSTER_TASK, acks_late=True, reject_on_worker_lost=True)
def recluster_task() -> dict[str, Any]:
    """Recluster now (skipped, saying why, while another run holds the lock)."""
    return run_recluster(_resources())


@shared_task(name=MAYBE_RECLUSTER_TASK, acks_late=True, reject_on_worker_lost=True)
def maybe_recluster_task() -> dict[str, Any]:
    """Beat's trigger: recluster when enough new tickets arrived."""
    return maybe_recluster(_resources())
