"""Thin tasks: take the run lock, call constellate.recluster, say why a trigger was skipped."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from constellate.recluster import recluster
from constellate.run_lock import RunLock
from worker.factory import MAYBE_RECLUSTER_TASK, RECLUSTER_TASK, Resources

log = logging.getLogger(__name__)


def _resources(task: Any) -> Resources:
    return task.app.constellate


@shared_task(bind=True, name=RECLUSTER_TASK, acks_late=True, reject_on_worker_lost=True)
def recluster_task(self: Any) -> dict[str, Any]:
    """Recluster now unless another run holds the lock."""
    res = _resources(self)
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


@shared_task(bind=True, name=MAYBE_RECLUSTER_TASK)
def maybe_recluster_task(self: Any) -> dict[str, Any]:
    """Beat's trigger: recluster only when enough tickets arrived since the last run."""
    res = _resources(self)
    state = res.store.get_state()
    new = res.store.count() - int(state.get("tickets_at_run", 0))
    needed = res.settings.recluster_min_new_tickets
    if state.get("current_run") and new < needed:
        return {"status": "skipped", "reason": f"{new} new tickets since the last run; {needed} needed"}
    return recluster_task.run()
