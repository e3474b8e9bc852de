"""Hostile input: every case gets a 4xx with a JSON reason, never a 5xx or a trace, and nothing stored
changes. Hand-written attacks first, then schemathesis over the app's own OpenAPI document."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from constellate.stream import STREAM_KEY


def _snapshot(store) -> tuple:
    """What a client can see of the store: ticket count, state, the catalogue."""
    state = store.get_state()
    clusters = sorted(
        (r.payload["cluster_id"], r.payload.get("name"), r.payload.get("size"))
        for r in store.list_clusters(state.get("current_run"))
    )
    return store.count(), state.get("current_run"), state.get("slot"), tuple(clusters)


def _deep(depth: int) -> bytes:
    return b'{"text": ' + b"[" * depth + b"]" * depth + b"}"


HOSTILE = [
    ("POST", "/tickets", b"x" * (11 * 1024 * 1024), 413),  # over max_body_bytes
    ("POST", "/tickets", _deep(100_000), 400),  # deep JSON
    ("POST", "/tickets", b'{"text": "caf\xe9 \xff\xfe"}', 400),  # invalid UTF-8
    ("POST", "/tickets", json.dumps({"text": "nul \x00 byte"}).encode(), 422),
    ("POST", "/tickets", json.dumps({"text": "x" * 1_000_000}).encode(), 413),  # 1 MB text
    ("POST", "/tickets", b'{"text": ""}', 422),
    ("POST", "/tickets", b'{"text": " \\t\\n "}', 422),
    ("POST", "/tickets", b'{"text": 12}', 422),
    ("POST", "/tickets", b'{"text": "ok", "colour": "red"}', 422),  # unknown field
    ("POST", "/tickets", b'{"tickets": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}', 409),
    ("POST", "/tickets", b'{"tickets": "nope"}', 422),
    ("POST", "/tickets", b'{"tickets": [], "more": 1}', 422),
    ("POST", "/tickets", b"null", 400),
    ("POST", "/tickets", b"", 400),
    ("GET", "/search?q=x&limit=-1", None, 400),
    ("GET", "/search?q=x&limit=99999999999999999999999", None, 400),
    ("GET", "/search?q=x&cluster_id=424242", None, 404),
    ("GET", "/search?q=" + "x" * 5000, None, 400),
    ("GET", "/search?q=%00", None, 400),
    ("GET", "/search?q=%ff%fe", None, 400),
    ("GET", "/search", None, 400),
    ("GET", "/clusters/424242", None, 404),
    ("GET", "/clusters/-3", None, 404),
    ("GET", "/clusters/abc", None, 404),
    ("GET", "/outliers?limit=0", None, 400),
    ("GET", "/tickets/" + "a" * 5000, None, 404),
    ("GET", "/runs?limit=abc", None, 400),
]


@pytest.mark.parametrize(
    "method, path, body, status", HOSTILE, ids=[f"{m} {p[:30]} {str(b)[:30]}" for m, p, b, _ in HOSTILE]
)
def test_hostile_request_gets_a_json_4xx_and_changes_nothing(
    client, api_store, redis_url, method, path, body, status
) -> None:
    store, _ = api_store
    before = _snapshot(store)
    queued = redis.Redis.from_url(redis_url).xlen(STREAM_KEY)
    resp = client.open(path, method=method, data=body, content_type="application/json")
    assert resp.status_code == status, resp.get_data()[:300]
    payload = resp.get_json()
    assert isinstance(payload, dict) and payload["error"]
    assert "Traceback" not in resp.get_data(as_text=True)
    assert _snapshot(store) == before
    assert redis.Redis.from_url(redis_url).xlen(STREAM_KEY) == queued  # nothing half-queued


EDIT_SUFFIXES = ("/merge", "/split", "/not-outlier")


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzz_every_operation_of_the_openapi_spec(app, api_store, mode) -> None:
    """Schemathesis cases for each operation (valid data, then schema-violating data)."""
    store, _ = api_store
    before = _snapshot(store)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16
    # reads, ingestion and recluster first (they only queue); human edits last, as they may change things
    operations.sort(key=lambda op: op.method.upper() == "PATCH" or op.path.endswith(EDIT_SUFFIXES))
    tried: list[str] = []
    checked = False
    for operation in operations:
        if not checked and (operation.method.upper() == "PATCH" or operation.path.endswith(EDIT_SUFFIXES)):
            assert _snapshot(store) == before  # nothing stored changed before the edit routes ran
            checked = True
        strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

        @hsettings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def attack(case) -> None:
            response = case.call()
            tried.append(f"{case.method} {case.path} -> {response.status_code}")
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:
                body = response.json()
                assert isinstance(body, dict) and isinstance(body.get("error"), str), body
                assert "Traceback" not in response.text

        attack()
    assert checked and len(tried) >= 5 * len(operations)
    print(f"{mode}: {len(tried)} cases over {len(operations)} operations;", Counter(t[-3:] for t in tried))
    assert _snapshot(store)[0] == before[0]  # edits relabel; no ticket is ever lost or added
