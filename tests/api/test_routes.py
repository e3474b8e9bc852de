"""Every route through Flask's test client, including each error status."""

from __future__ import annotations

import json
import re

import jsonschema_rs
import pytest
import redis
from pydantic import SecretStr

from api import create_app
from constellate.stream import STREAM_KEY


def test_post_one_ticket_queues_it(client, redis_url) -> None:
    resp = client.post(
        "/tickets", json={"id": "n1", "text": "my refund never came", "metadata": {"tier": "gold"}}
    )
    assert resp.status_code == 202
    assert resp.get_json() == {"accepted": 1, "ids": ["n1"]}
    entries = redis.Redis.from_url(redis_url).xrange(STREAM_KEY)
    assert json.loads(entries[-1][1][b"ticket"])["metadata"] == {"tier": "gold"}


def test_post_a_batch_and_ids_from_text(client) -> None:
    resp = client.post("/tickets", json={"tickets": [{"id": 5, "text": "a"}, {"text": "no id"}]})
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["accepted"] == 2 and body["ids"][0] == "5" and body["ids"][1].startswith("sha1:")


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"tickets": [{"id": "a", "text": "ok"}, {"id": "b", "text": "  "}]}, 422, "empty text"),
        (
            {"tickets": [{"id": "a", "text": "x"}, {"id": "b", "text": ""}, {"id": "a", "text": "y"}]},
            422,
            "repeats",
        ),
        ({"tickets": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}, 409, "repeats item 0"),
        ({"tickets": [{"text": "same"}, {"text": "same"}]}, 409, "repeats item 0"),  # ids from the text
        ({"tickets": [{"id": "a", "text": 3}]}, 422, "valid string"),
        ({"tickets": [{"id": "a", "text": "x", "colour": "red"}]}, 422, "Extra inputs"),
        ({"tickets": []}, 422, "non-empty"),
        ({"tickets": [{"text": "t"}] * 6}, 413, "limit is 5"),
        ({"id": "long", "text": "x" * 201}, 413, "limit is 200"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_bad_tickets_are_refused_with_reasons_and_nothing_queued(
    client, redis_url, body, status, needle
) -> None:
    before = redis.Redis.from_url(redis_url).xlen(STREAM_KEY)
    resp = client.post("/tickets", json=body)
    assert resp.status_code == status
    assert needle in json.dumps(resp.get_json())
    assert redis.Redis.from_url(redis_url).xlen(STREAM_KEY) == before


def test_non_json_and_huge_bodies(client, app) -> None:
    assert client.post("/tickets", data="text=hi").status_code == 400
    app.config["MAX_CONTENT_LENGTH"] = 1000
    resp = client.post("/tickets", data="x" * 5000, content_type="application/json")
    assert resp.status_code == 413 and "too large" in resp.get_json()["error"]


def test_get_ticket_has_live_cluster_fields(client) -> None:
    body = client.get("/tickets/t0-3").get_json()
    assert body["ticket_id"] == "t0-3" and body["assigned_by"] == "recluster"
    assert isinstance(body["cluster_id"], int) and body["cluster_name"]
    assert 0.0 <= body["outlier_score"] <= 1.0
    assert client.get("/tickets/nope").status_code == 404


def test_search_filtered_by_cluster_honours_the_filter(client) -> None:
    other = client.get("/tickets/t2-0").get_json()["cluster_id"]
    resp = client.get(f"/search?q=card declined payment&cluster_id={other}&limit=50")
    assert resp.status_code == 200
    hits = resp.get_json()["hits"]
    assert len(hits) == 40 and all(h["cluster_id"] == other for h in hits)
    top = client.get("/search?q=card declined payment&limit=5").get_json()["hits"]
    scores = [h["score"] for h in top]
    assert len(top) == 5 and scores == sorted(scores, reverse=True)
    name = client.get(f"/clusters/{other}").get_json()["name"]
    by_name = client.get("/search", query_string={"q": "x", "cluster_name": name}).get_json()
    assert by_name["cluster_id"] == other


def test_search_by_cluster_id_and_name(client) -> None:
    """Both given: they must name the same cluster (200, that cluster) or it is the documented 409."""
    one, other = (client.get(f"/tickets/t{i}-0").get_json()["cluster_id"] for i in (0, 2))
    name = client.get(f"/clusters/{other}").get_json()["name"]
    same = client.get(
        "/search", query_string={"q": "x", "cluster_id": other, "cluster_name": f" {name.upper()} "}
    )
    assert same.status_code == 200 and same.get_json()["cluster_id"] == other
    clash = client.get("/search", query_string={"q": "x", "cluster_id": one, "cluster_name": name})
    assert clash.status_code == 409 and "different clusters" in clash.get_json()["error"]
    gone = client.get("/search", query_string={"q": "x", "cluster_id": 999, "cluster_name": name})
    assert gone.status_code == 404  # a cluster that does not exist is not a conflict


def test_search_without_outliers(client) -> None:
    hits = client.get("/search?q=refund money back&limit=100&include_outliers=false").get_json()["hits"]
    assert hits and not any(h["is_outlier"] for h in hits)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("q=", 400),
        ("q=x&limit=0", 400),
        ("q=x&limit=-3", 400),
        ("q=x&limit=100000", 400),
        ("q=x&limit=abc", 400),
        ("q=x&cluster_id=999", 404),
        ("q=x&cluster_id=-1", 400),
        ("q=x&cluster_name=nothing-like-this", 404),
        ("q=x&bogus=1", 400),
        ("q=x&q=y", 400),
    ],
)
def test_bad_search_params(client, query, status) -> None:
    resp = client.get(f"/search?{query}")
    assert resp.status_code == status
    assert "error" in resp.get_json()


def test_clusters_catalogue_and_detail(client) -> None:
    body = client.get("/clusters").get_json()
    assert body["run_id"] and len(body["clusters"]) == 4
    first = body["clusters"][0]
    assert set(first) == {
        "cluster_id",
        "name",
        "keywords",
        "size",
        "pinned",
        "growth_24h",
        "growth_7d",
        "history",
        "level",
        "topic_id",
        "children",
    }
    assert first["level"] == "cluster" and first["topic_id"] is not None and first["children"] == []
    assert first["history"] == [first["size"]]  # one run so far
    assert first["growth_24h"] == first["size"]  # all created just now
    detail = client.get(f"/clusters/{first['cluster_id']}").get_json()
    assert len(detail["exemplars"]) == 5 and detail["lineage"][0]["event"] == "born"
    assert client.get("/clusters/12345").status_code == 404
    assert client.get("/clusters/abc").status_code == 404


def test_outliers_highest_score_first(client) -> None:
    body = client.get("/outliers?limit=5").get_json()
    scores = [o["outlier_score"] for o in body["outliers"]]
    assert (
        len(scores) == 5
        and scores == sorted(scores, reverse=True)
        and all(o["is_outlier"] for o in body["outliers"])
    )
    assert client.get("/outliers?limit=-1").status_code == 400


def test_runs_and_recluster(client, redis_url) -> None:
    runs = client.get("/runs").get_json()
    assert runs["current_run"] == runs["runs"][0]["run_id"]
    one = client.get(f"/runs/{runs['current_run']}").get_json()
    assert one["status"] == "succeeded"
    assert client.get("/runs/nope").status_code == 404
    resp = client.post("/recluster")
    assert resp.status_code == 202 and resp.get_json()["task_id"]
    assert redis.Redis.from_url(redis_url).llen("celery") == 1  # queued by name for the worker


def test_healthz_and_openapi(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "store": True, "broker": True}
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/tickets", "/search", "/clusters", "/outliers", "/runs", "/recluster"} <= set(spec["paths"])
    assert "TicketIn" in spec["components"]["schemas"]


def test_every_route_is_documented_and_the_open_ones_say_so(app) -> None:
    """The document lists every route the app serves, with 401 on keyed ones and ``security: []``
    on the ones the key check lets through."""
    spec = app.test_client().get("/openapi.json").get_json()
    served = {
        (method.lower(), re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"  # Flask's own /static/<filename>: the same files as /static/<name>
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert documented == served
    open_ops = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if op.get("security") == []:
                open_ops.add(path)
                assert "401" not in op["responses"]
            else:
                assert "401" in op["responses"], (method, path)
    assert open_ops == {"/", "/healthz", "/static/{name}"}
    limits = spec["components"]["schemas"]
    assert limits["TicketIn"]["properties"]["text"]["maxLength"] == 200  # the app's max_text_chars
    assert limits["TicketBatchIn"]["properties"]["tickets"]["maxItems"] == 5  # and max_batch


def test_created_at_is_accepted_exactly_inside_the_documented_bounds(client, redis_url) -> None:
    """The document (judged by jsonschema-rs, formats on) and the service agree on created_at."""
    spec = client.get("/openapi.json").get_json()
    valid = jsonschema_rs.Draft202012Validator(
        spec["components"]["schemas"]["TicketIn"], validate_formats=True
    ).is_valid
    accepted = [
        (-30610224000, "1000-01-01T00:00:00Z"),  # the documented minimum
        (253402300799, "9999-12-31T23:59:59Z"),  # and maximum
        (253402300798.9999999, "9999-12-31T23:59:59Z"),
        ("1001-01-01T00:00:00+23:59", "1000-12-31T00:01:00Z"),  # the pattern's extremes
        ("9998-12-31T23:59:59.999999-23:59", "9999-01-01T23:58:59Z"),
        ("2024-02-29T12:00:00Z", "2024-02-29T12:00:00Z"),
    ]
    for created_at, stored in accepted:
        body = {"id": "t", "text": "x", "created_at": created_at}
        assert valid(body), created_at
        resp = client.post("/tickets", json=body)
        assert resp.status_code == 202, (created_at, resp.get_json())
        entries = redis.Redis.from_url(redis_url).xrange(STREAM_KEY)
        assert json.loads(entries[-1][1][b"ticket"])["created_at"] == stored
    for created_at in (253402300800, -62135596801, 1e300, "2023-02-29T00:00:00Z", "merge", "NaN"):
        body = {"id": "t", "text": "x", "created_at": created_at}
        assert not valid(body), created_at
        resp = client.post("/tickets", json=body)
        assert resp.status_code == 422 and "created_at" in json.dumps(resp.get_json())


def test_healthz_reports_a_dead_broker(api_store, hash_embedder) -> None:
    store, settings = api_store
    app = create_app(settings, store=store, embedder=hash_embedder, redis_url="redis://127.0.0.1:1")
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503 and resp.get_json()["broker"] is False


def test_unknown_route_and_method_are_json(client) -> None:
    assert client.get("/nope").get_json()["error"]
    assert client.delete("/clusters").status_code == 405


def test_api_key_on(api_store, hash_embedder, redis_url) -> None:
    store, settings = api_store
    keyed = settings.model_copy(update={"api_key": SecretStr("s3cret-key")})
    c = create_app(keyed, store=store, embedder=hash_embedder, redis_url=redis_url).test_client()
    assert c.get("/healthz").status_code == 200  # open
    assert c.get("/clusters").status_code == 401
    assert c.get("/clusters", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/clusters", headers={"Authorization": "s3cret-key"}).status_code == 401
    assert c.get("/clusters", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    assert c.post("/tickets", json={"text": "x"}).status_code == 401


def test_metrics_in_prometheus_text_format(client) -> None:
    client.get("/clusters")
    client.get("/search?q=x&limit=0")
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    text = resp.get_data(as_text=True)
    assert "constellate_tickets 160.0" in text
    assert "constellate_clusters 4.0" in text
    assert "constellate_outlier_share" in text and "constellate_recluster_seconds" in text
    assert "constellate_recluster_last_success_timestamp_seconds" in text
    assert "constellate_stream_pending" in text and "constellate_stream_undelivered" in text
    assert 'constellate_http_request_seconds_count{method="GET",route="/clusters",status="200"} 1.0' in text
    assert 'route="/search",status="400"' in text


def test_request_id_is_echoed_and_logged(client, caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="constellate.api"):
        resp = client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert resp.headers["X-Request-ID"] == "abc123"
    record = next(r for r in caplog.records if getattr(r, "request_id", None) == "abc123")
    assert record.route == "/healthz" and record.status == 200


def test_json_log_lines() -> None:
    import json as _json
    import logging

    from constellate.jsonlog import JsonFormatter

    record = logging.LogRecord("x", logging.INFO, "f", 1, "hello %s", ("you",), None)
    record.request_id = "r1"
    line = _json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello you" and line["request_id"] == "r1" and line["level"] == "info"
