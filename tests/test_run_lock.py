"""The recluster lock: a lease renewed by a live run, freed within one lease when the holder dies."""

from __future__ import annotations

import time

import redis

from constellate.run_lock import RunLock


def test_a_dead_holder_frees_the_lock_within_one_lease(redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    dead = RunLock(client, timeout=1)  # acquired, never renewed: as if its process was killed
    assert dead.acquire()
    assert not RunLock(client, timeout=1).acquire()
    time.sleep(1.3)
    assert RunLock(client, timeout=1).acquire()


def test_a_live_holder_keeps_the_lock_past_its_lease(redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    live = RunLock(client, timeout=2)  # renewed every ~0.7 s: slack for a loaded machine
    assert live.acquire()
    live.keep_alive()
    time.sleep(5)  # two and a half leases
    other = RunLock(client, timeout=2)
    assert not other.acquire() and other.holder() == live.run_id
    live.release()
    assert other.acquire()  # released at once, not at expiry


def test_release_never_frees_someone_elses_lock(redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    first = RunLock(client, timeout=1)
    assert first.acquire()
    client.delete(first.key)  # the lease ran out ...
    second = RunLock(client, timeout=60)
    assert second.acquire()  # ... and another run took it
    first.release()
    assert second.holder() == second.run_id
    assert not first.renew()
