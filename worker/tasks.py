"""Thin tasks: take the run lock, call the pipeline, say why a trigger was skipped.

With ``recluster_parts`` = P > 1 the run's labelling pass is a Celery chord: the trigger task
prepares the plan (fit once) and hands it to P part tasks over point-id ranges through Redis; the
chord's body switches once every part has stored its counts. Parts revive the run's lease while
they work; a part whose worker dies is redelivered (late acks) and simply relabels its range again.

The tasks are ``shared_task``s that reach the process's resources through :func:`bind`, which
``make_celery`` calls (one worker app per process; tests bind each app they build). Looking the
resources up on ``task.app`` failed in ``constellate up``, where the API's enqueueing client is a
second Celery app in the same process.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from celery import chord, shared_task

from constellate.exceptions import LeaseLost
from constellate.pipeline import (
    PartResult,
    Plan,
    Stages,
    fail,
    finish,
    id_ranges,
    label_range,
    prepare,
    recluster,
)
from constellate.pipeline.switch import FencedLease, record_switched
from constellate.run_lock import RunLock

if TYPE_CHECKING:
    from constellate.resources import Resources

log = logging.getLogger(__name__)

RECLUSTER_TASK = "constellate.recluster"
MAYBE_RECLUSTER_TASK = "constellate.maybe_recluster"
PART_TASK = "constellate.recluster_part"
FINISH_TASK = "constellate.recluster_finish"
ABORT_TASK = "constellate.recluster_abort"


def _keys(run_id: str) -> tuple[str, str]:
    return f"constellate:run:{run_id}:plan", f"constellate:run:{run_id}:parts"


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "events"}


def run_recluster(res: Resources, full: bool = False) -> dict[str, Any]:
    """Recluster now unless another run holds the lock (fanned out when ``recluster_parts`` > 1;
    ``full``: a full run even when an incremental one would do)."""
    lock = RunLock(res.redis, timeout=res.settings.recluster_lock_seconds)
    if not lock.acquire():
        reason = f"skipped: run {lock.holder() or '?'} holds the recluster lock"
        log.info(reason)
        return {"status": "skipped", "reason": reason}
    lock.keep_alive()
    parts = res.settings.recluster_parts
    if parts == 1:
        try:
            run = recluster(
                res.store,
                res.settings,
                namer=res.namer,
                progress=log.info,
                notifier=res.notifier,
                lease=lock,
                optimizer=res.optimizer,
                full=full,
            )
        finally:
            lock.release()
        return _summary(run)
    try:
        stages = Stages(log.info)
        plan = prepare(res.store, res.settings, res.namer, lock, stages, full=full)
        if isinstance(plan, dict):
            lock.release()
            return _summary(plan)
        plan.record["seconds"] = stages.rounded()
        plan.record["dispatched_at"] = time.time()
        plan_key, parts_key = _keys(plan.run_id)
        ttl = res.settings.recluster_max_seconds + 3600
        pipe = res.redis.pipeline()
        pipe.set(plan_key, plan.to_bytes(), ex=ttl)
        pipe.delete(parts_key)
        pipe.execute()
        header = [recluster_part_task.si(plan.run_id, i, parts) for i in range(parts)]
        body = recluster_finish_task.si(plan.run_id, parts).on_error(recluster_abort_task.si(plan.run_id))
        finished = chord(header)(body)
    except BaseException:
        lock.release()
        raise
    lock.stop_heartbeat()  # the parts and the finish revive the lease from here
    return {"status": "dispatched", "run_id": plan.run_id, "parts": parts, "finish_task_id": finished.id}


def run_part(res: Resources, run_id: str, index: int, parts: int) -> dict[str, Any]:
    """Label one id range of a fanned-out run and store its counts (idempotent when redelivered)."""
    lock = RunLock(res.redis, timeout=res.settings.recluster_lock_seconds, run_id=run_id)
    if not lock.revive():
        raise LeaseLost(f"run {run_id} lost the recluster lock to run {lock.holder()}")
    lock.keep_alive()
    try:
        # A part redelivered after its run was superseded (a newer run claimed, even switched, in
        # between) could take the free lock again: the store's claim says whether it may still write.
        fenced = FencedLease(lock, res.store)
        try:
            fenced.confirm()
        except LeaseLost:
            lock.release_if_held()  # revived for a superseded run: free it at once
            raise
        plan_key, parts_key = _keys(run_id)
        data = res.redis.get(plan_key)
        if data is None:
            raise LeaseLost(f"run {run_id}: its plan is gone (expired or aborted)")
        plan = Plan.from_bytes(data)
        start, stop = id_ranges(parts)[index]
        started = time.perf_counter()
        result = label_range(
            res.store,
            plan,
            fenced,
            res.settings.recluster_page_size,
            start,
            stop,
            seed=res.settings.seed + index,
        )
        seconds = time.perf_counter() - started
        res.redis.hset(parts_key, str(index), json.dumps({**result.to_dict(), "seconds": seconds}))
        res.redis.expire(parts_key, res.settings.recluster_max_seconds + 3600)
    finally:
        lock.stop_heartbeat()
    return {"part": index, "n": result.n, "written": result.written, "seconds": round(seconds, 3)}


def run_finish(res: Resources, run_id: str, parts: int) -> dict[str, Any]:
    """The chord's body: once every part has stored its counts, write the catalogue and switch."""
    done = res.store.get_run(run_id) or {}
    if done.get("status") != "running":  # a duplicate delivery of the body: the run already ended
        return _summary(done)
    if res.store.get_state().get("current_run") == run_id:  # redelivered after its switch
        RunLock(res.redis, timeout=res.settings.recluster_lock_seconds, run_id=run_id).release_if_held()
        return _summary(record_switched(res.store, done, "its finish was redelivered after the switch"))
    plan_key, parts_key = _keys(run_id)
    stored = res.redis.hgetall(parts_key)
    if len(stored) < parts:  # the chord counted a duplicate part: wait for the real last one
        raise RuntimeError(f"run {run_id}: {len(stored)} of {parts} parts stored")
    lock = RunLock(res.redis, timeout=res.settings.recluster_lock_seconds, run_id=run_id)
    if not lock.revive():
        raise LeaseLost(f"run {run_id} lost the recluster lock to run {lock.holder()}")
    lock.keep_alive()
    try:
        fenced = FencedLease(lock, res.store)
        fenced.confirm()
        plan = Plan.from_bytes(res.redis.get(plan_key))
        counts = [json.loads(v) for v in stored.values()]
        stages = Stages(log.info, plan.record.get("seconds", {}))
        stages.seconds.pop("total", None)
        stages.add("write", time.time() - float(plan.record.pop("dispatched_at", time.time())))
        plan.record["part_seconds"] = sorted(round(float(c["seconds"]), 3) for c in counts)
        run = finish(
            res.store,
            res.settings,
            plan,
            [PartResult.from_dict(c) for c in counts],
            fenced,
            stages,
            res.notifier,
            res.optimizer,
        )
        res.redis.delete(plan_key, parts_key)
    finally:
        lock.release()
    return _summary(run)


def abort_run(res: Resources, run_id: str) -> None:
    """A part failed for good: record the run failed (readers keep the previous run) and free the lock."""
    run = res.store.get_run(run_id)
    if run is not None and run.get("status") == "running":
        if res.store.get_state().get("current_run") == run_id:  # it switched: never call it failed
            record_switched(res.store, run, "stopped after its switch")
        else:
            fail(res.store, run, RuntimeError("a part of the run failed"), Stages(seconds=run.get("seconds")))
    RunLock(res.redis, timeout=res.settings.recluster_lock_seconds, run_id=run_id).release_if_held()
    res.redis.delete(*_keys(run_id))


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
def recluster_task(full: bool = False) -> dict[str, Any]:
    """Recluster now (skipped, saying why, while another run holds the lock); ``full``: a rebase."""
    return run_recluster(_resources(), full=bool(full))


@shared_task(name=MAYBE_RECLUSTER_TASK, acks_late=True, reject_on_worker_lost=True)
def maybe_recluster_task() -> dict[str, Any]:
    """Beat's trigger: recluster when enough new tickets arrived."""
    return maybe_recluster(_resources())


@shared_task(name=PART_TASK, acks_late=True, reject_on_worker_lost=True)
def recluster_part_task(run_id: str, index: int, parts: int) -> dict[str, Any]:
    """One id range of a fanned-out run's labelling pass."""
    return run_part(_resources(), run_id, index, parts)


@shared_task(
    name=FINISH_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=60,
    default_retry_delay=5,
)
def recluster_finish_task(self: Any, run_id: str, parts: int) -> dict[str, Any]:
    """Switch a fanned-out run once all its parts are stored."""
    try:
        return run_finish(_resources(), run_id, parts)
    except RuntimeError as exc:
        if "parts stored" in str(exc):
            raise self.retry(exc=exc) from exc
        raise


@shared_task(name=ABORT_TASK, acks_late=True)
def recluster_abort_task(*_args: Any, run_id: str | None = None) -> None:
    """The chord's error callback."""
    if run_id is None and _args and isinstance(_args[-1], str):
        run_id = _args[-1]
    if run_id:
        abort_run(_resources(), run_id)
