"""Thin tasks: take the run lock, call constellate.recluster, say why a trigger was skipped.

Tasks are registered on the app ``make_celery`` builds (not ``shared_task``): a process may hold
other Celery apps (the API's enqueueing client), and each task must reach its own app's resources.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from constellate.recluster import recluster
from constellate.run_lock import RunLock

if TYPE_CHECKING:
    from celery import Celery

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
    try:
        run = recluster(res.store, res.settings, namer=res.namer, run_id=lock.run_id)
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


def register(app: Celery, res: Resources) -> None:
    """Register the tasks on ``app`` only (``shared=False``: other apps in this process must not
    inherit tasks bound to these resources), bound to ``res``."""

    @app.task(name=RECLUSTER_TASK, acks_late=True, reject_on_worker_lost=True, shared=False)
    def recluster_task() -> dict[str, Any]:
        return run_recluster(res)

    @app.task(name=MAYBE_RECLUSTER_TASK, acks_late=True, reject_on_worker_lost=True, shared=False)
    def maybe_recluster_task() -> dict[str, Any]:
        return maybe_recluster(res)
