"""The key check, CORS, secrets kept out of logs, and the compose file's exposure."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

import yaml
from pydantic import SecretStr

from api import create_app

API_KEY = "k3y-0f-the-api-7b9c2d41"
QDRANT_KEY = "qdrant-k3y-5e8f9a0b1c"


def _keyed_client(api_store, hash_embedder, redis_url, **extra):
    store, settings = api_store
    keyed = settings.model_copy(
        update={"api_key": SecretStr(API_KEY), "qdrant_api_key": SecretStr(QDRANT_KEY), **extra}
    )
    return create_app(keyed, store=store, embedder=hash_embedder, redis_url=redis_url).test_client()


def test_the_key_is_compared_in_constant_time(api_store, hash_embedder, redis_url, monkeypatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    c = _keyed_client(api_store, hash_embedder, redis_url)
    near_miss = API_KEY[:-1] + "X"  # same length, one byte off
    assert c.get("/clusters", headers={"Authorization": f"Bearer {near_miss}"}).status_code == 401
    assert c.get("/clusters", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert calls == [(near_miss.encode(), API_KEY.encode()), (API_KEY.encode(), API_KEY.encode())]


def test_keys_never_reach_the_logs(api_store, hash_embedder, redis_url, caplog) -> None:
    c = _keyed_client(api_store, hash_embedder, redis_url)
    with caplog.at_level(logging.DEBUG):
        c.get("/clusters", headers={"Authorization": f"Bearer {API_KEY}"})
        c.get("/clusters", headers={"Authorization": f"Bearer {API_KEY}x"})
        c.get("/search?q=card&limit=5000", headers={"Authorization": f"Bearer {API_KEY}"})
        c.post("/tickets", data=b"{bad", headers={"Authorization": f"Bearer {API_KEY}"})
    assert caplog.records  # the requests were logged ...
    assert API_KEY not in caplog.text and QDRANT_KEY not in caplog.text  # ... without the keys
    settings = c.application.extensions["constellate"].settings
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert API_KEY not in shown and QDRANT_KEY not in shown


def test_cors_is_off_by_default(client) -> None:
    resp = client.get("/clusters", headers={"Origin": "https://evil.example"})
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" not in resp.headers
    preflight = client.options("/tickets", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_for_configured_origins_only(api_store, hash_embedder, redis_url) -> None:
    c = _keyed_client(api_store, hash_embedder, redis_url, cors_origins=["https://support.example"])
    preflight = c.options(
        "/tickets",
        headers={"Origin": "https://support.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://support.example"
    other = c.get(
        "/clusters", headers={"Origin": "https://evil.example", "Authorization": f"Bearer {API_KEY}"}
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    assert c.get("/clusters", headers={"Origin": "https://support.example"}).status_code == 401  # still keyed


def test_compose_keeps_stores_private_and_demands_secrets() -> None:
    compose = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "ports" not in services["qdrant"] and "ports" not in services["redis"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published == ["${CONSTELLATE_API_BIND:-127.0.0.1:8000}:8000"]  # loopback unless told
    env = services["api"]["environment"]
    assert env["CONSTELLATE_ENVIRONMENT"] == "${CONSTELLATE_ENVIRONMENT:-production}"
    assert ":?" in env["CONSTELLATE_API_KEY"] and ":?" in env["CONSTELLATE_QDRANT_API_KEY"]
