"""Waiting for a run handed to the service: an answer, a busy service, and a service that lost it."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from constellate.config import Settings
from constellate.run_lock import RunLock
from constellate.service_run import ServiceLost, recluster_via_service


def test_a_request_nobody_takes_fails_after_the_idle_limit(redis_url, tmp_path) -> None:
    """No worker consumes the queue (the service died with the message): a clear error, not hours."""
    started = time.monotonic()
    with pytest.raises(ServiceLost, match="neither answered nor held the run lock"):
        recluster_via_service(redis_url, Settings(data_dir=tmp_path), idle_limit=1.0, poll=0.2)
    assert time.monotonic() - started < 30


def test_a_run_holding_the_lock_keeps_the_request_waiting(redis_url, tmp_path) -> None:
    """While a run holds the lock the service is busy: the wait goes on past the idle limit."""
    other = RunLock(redis.Redis.from_url(redis_url), timeout=30, run_id="run-ahead")
    assert other.acquire()
    said: list[str] = []
    release = threading.Timer(3.0, other.release)
    release.start()
    started = time.monotonic()
    try:
        with pytest.raises(ServiceLost):
            recluster_via_service(
                redis_url, Settings(data_dir=tmp_path), idle_limit=1.0, poll=0.2, say=said.append
            )
    finally:
        release.cancel()
        other.release_if_held()
    assert time.monotonic() - started >= 3.0 + 1.0  # held for 3 s, then seen idle for the limit
    assert said == ["run run-ahead is in progress"]
