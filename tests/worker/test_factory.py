"""Where a worker warms the clustering kernels: in the processes that run its tasks."""

from __future__ import annotations

from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.solo import TaskPool as SoloPool
from celery.concurrency.thread import TaskPool as ThreadPool

from worker.factory import pool_warms_itself


def test_prefork_and_solo_pools_warm_in_their_task_processes_a_thread_pool_when_ready() -> None:
    # prefork: each child on worker_process_init, never the parent (GNU OpenMP in a parent kills
    # the children it forks later); solo: its one process, on the same signal
    assert pool_warms_itself(PreforkPool(limit=1))
    assert pool_warms_itself(SoloPool())
    threads = ThreadPool(limit=1)
    try:
        assert not pool_warms_itself(threads)  # no worker_process_init: warmed on worker_ready
    finally:
        threads.executor.shutdown(wait=False)
    assert not pool_warms_itself(None)
