"""Hand a recluster to the running service through its broker, and wait for it without hanging.

Used by ``constellate recluster`` when ``constellate up`` or a worker holds the embedded store. A
plain ``AsyncResult.get`` waits as long as the longest task may run (hours) when the service dies
with the message unacknowledged (late acks redeliver it only after the visibility timeout). So the
wait watches the run lock too: while some run holds it the service is working (this run, or one
ahead of it that will make this one skip); once nobody has held it for ``idle_limit`` seconds and
no answer came, the service is taken to have lost the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from constellate.config import Settings
from constellate.exceptions import ConstellateError

RECLUSTER_TASK = "constellate.recluster"


class ServiceLost(ConstellateError):
    """The service took no visible step on the request for too long (restarted or stopped)."""


def recluster_via_service(
    url: str,
    settings: Settings,
    idle_limit: float | None = None,
    poll: float = 2.0,
    say: Callable[[str], None] | None = None,
    full: bool = False,
) -> dict[str, Any]:
    """Send a recluster task to the service on broker ``url`` and return the run's result (for a
    fanned-out run, the result of the chord's body that switched).

    Raises :class:`ServiceLost` when no run held the lock for ``idle_limit`` seconds (default: five
    leases, at least a minute — room for the embedded engine's background optimisation, which pauses
    the service's worker) and no result came, and :class:`TimeoutError` after ``recluster_max_seconds``.
    """
    if idle_limit is None:
        idle_limit = max(60.0, 5.0 * settings.recluster_lock_seconds)
    import redis
    from celery import Celery
    from celery.exceptions import TimeoutError as ResultTimeout

    from constellate.run_lock import RunLock

    client = Celery("constellate-cli", broker=url, backend=url, set_as_current=False)
    lock = RunLock(redis.Redis.from_url(url, socket_timeout=5), timeout=settings.recluster_lock_seconds)
    result = client.send_task(RECLUSTER_TASK, kwargs={"full": True} if full else None)
    started = time.monotonic()
    idle_since: float | None = None  # first time the lock was seen free, since it was last held
    holder = None
    while True:
        try:
            answer = dict(result.get(timeout=poll))
            if answer.get("status") != "dispatched" or not answer.get("finish_task_id"):
                return answer
            # fanned out: the answer that matters is the chord's body, which switches
            result, idle_since = client.AsyncResult(answer["finish_task_id"]), None
            continue
        except ResultTimeout:
            pass
        now = time.monotonic()
        current = lock.holder()
        if current is not None:
            idle_since = None
            if current != holder and say is not None:
                say(f"run {current} is in progress")
            holder = current
        elif idle_since is None:
            idle_since = now
        elif now - idle_since > idle_limit:
            raise ServiceLost(
                f"the service neither answered nor held the run lock for {idle_limit:.0f} s "
                f"(restarted or stopped?); the run was not confirmed — try again"
            )
        if now - started > settings.recluster_max_seconds:
            raise TimeoutError(f"no answer within {settings.recluster_max_seconds} s")
