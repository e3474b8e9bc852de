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
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from requests.structures import CaseInsensitiveDict
from schemathesis import GenerationMode
from schemathesis.checks import (  # schemathesis 4.x built-in checks (module attributes, loaded on access)
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
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
API_KEY = "fuzz-k3y-4c1e9b7d0a52"
CONFORMANCE = [  # the response is one the document gives: status, media type, headers, body
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# schema-valid data is never refused as invalid (400/422/413), and a keyed operation refuses a missing or wrong key
POSITIVE_CHECKS = [*CONFORMANCE, positive_data_acceptance, ignored_auth]


def _keyed(operation) -> bool:
    return operation.definition.raw.get("security") != []


def _takes_input(operation) -> bool:
    """A query string or a body, which negative data can always break."""
    raw = operation.definition.raw
    return "requestBody" in raw or any(p["in"] == "query" for p in raw.get("parameters", []))


def _without_key(headers) -> CaseInsensitiveDict:
    return CaseInsensitiveDict({k: v for k, v in (headers or {}).items() if k.lower() != "authorization"})


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzz_every_operation_of_the_openapi_spec(api_store, hash_embedder, redis_url, mode) -> None:
    """Schemathesis over the document of a service with an API key, each operation in turn.

    With the key (schemathesis sends it where the document asks for it): every response's status,
    media type and body are the document's. Schema-valid data is never refused as invalid and keyed
    operations refuse a missing or wrong key. The same schema-valid request without the key gets the
    documented 401 on every keyed operation and never on an open one.
    """
    store, settings = api_store
    keyed = settings.model_copy(update={"api_key": SecretStr(API_KEY)})
    app = create_app(keyed, store=store, embedder=hash_embedder, redis_url=redis_url)
    before = _snapshot(store)
    # the key goes wherever the document asks for it, never a generated or negated one: requests
    # without it are the ones made below, and negative data goes into the parameters and bodies
    config = schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"bearer": {"bearer": API_KEY}}},
            "generation": {"with-security-parameters": False},
        }
    )
    schema = schemathesis.openapi.from_wsgi(
        "/openapi.json", app, config=config, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    # every documented operation but /openapi.json, which schemathesis leaves out (it is the document)
    assert len(operations) == sum(len(ops) for ops in schema.raw_schema["paths"].values()) - 1 >= 20
    # reads, ingestion and recluster first (they only queue); human edits last, as they may change things
    operations.sort(key=lambda op: op.method.upper() == "PATCH" or op.path.endswith(EDIT_SUFFIXES))
    tried: list[str] = []
    refused: Counter[str] = Counter()
    nothing_to_negate: list[str] = []
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
            case.validate_response(response, checks=POSITIVE_CHECKS if mode == "positive" else CONFORMANCE)
            if response.status_code >= 400:
                body = response.json()
                assert isinstance(body, dict) and isinstance(body.get("error"), str), body
                assert "Traceback" not in response.text
            if mode == "positive":
                bare = case.derive(headers=_without_key(case.headers))
                answer = bare.call()
                bare.validate_response(answer, checks=CONFORMANCE)
                assert (answer.status_code == 401) == _keyed(case.operation), (case.path, answer.status_code)
                refused["401" if answer.status_code == 401 else "open"] += 1

        try:
            attack()
        except Unsatisfiable:
            if mode == "positive" or _takes_input(operation):
                raise
            nothing_to_negate.append(operation.label)  # no query and no body, the key is not negated
    ran = len(operations) - len(nothing_to_negate)
    assert checked and len(tried) >= 5 * ran and ran >= 10
    print(f"{mode}: {len(tried)} cases over {len(operations)} operations;", Counter(t[-3:] for t in tried))
    print("nothing to negate:", nothing_to_negate)
    if mode == "positive":
        print("the same without the key:", dict(refused))
        assert refused["401"] and refused["open"]
    assert _snapshot(store)[0] == before[0]  # edits relabel; no ticket is ever lost or added
