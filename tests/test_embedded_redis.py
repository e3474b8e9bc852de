"""The embedded Valkey: started under the data dir, found again, and its queue survives a restart."""

from __future__ import annotations

import redis

from constellate import embedded_redis
from constellate.config import Settings


def test_embedded_valkey_persists_the_stream_across_a_restart(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    url = embedded_redis.redis_url(settings)
    try:
        assert embedded_redis.redis_url(settings) == url  # found again, not started twice
        client = redis.Redis.from_url(url)
        client.xadd("constellate:tickets", {"ticket": "{}"})
        client.xadd("constellate:tickets", {"ticket": "{}"})
    finally:
        embedded_redis.stop_embedded()
    assert (tmp_path / "d" / "valkey" / "appendonlydir").is_dir()
    again = embedded_redis.redis_url(settings)  # a fresh server on the same folder
    try:
        assert redis.Redis.from_url(again).xlen("constellate:tickets") == 2
    finally:
        embedded_redis.stop_embedded()


def test_a_configured_url_is_used_as_is(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "d", redis_url="redis://example.invalid:6379/0")
    assert embedded_redis.redis_url(settings) == "redis://example.invalid:6379/0"
    assert not (tmp_path / "d" / "valkey").exists()
