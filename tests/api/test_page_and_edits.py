"""The page and its data routes: /, /static, /map, /alerts, and the human-edit routes."""

from __future__ import annotations

import re

import jsonschema_rs
from pydantic import SecretStr

from api import create_app


def _clusters(client) -> list[dict]:
    return client.get("/clusters").get_json()["clusters"]


def test_page_is_served_whole_from_this_server(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/static/") for a in assets)  # no CDN: everything local
    for asset in assets:
        resp = client.get(asset)
        assert resp.status_code == 200
        assert not re.search(
            r"https?://", resp.get_data(as_text=True).replace("http://www.w3.org/2000/svg", "")
        )
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../__init__.py").status_code == 404


def test_page_is_open_but_its_data_is_keyed(api_store, hash_embedder, redis_url) -> None:
    store, settings = api_store
    keyed = settings.model_copy(update={"api_key": SecretStr("page-key-0123456789")})
    c = create_app(keyed, store=store, embedder=hash_embedder, redis_url=redis_url).test_client()
    assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
    assert c.get("/map").status_code == 401 and c.get("/alerts").status_code == 401
    assert c.patch("/clusters/0", json={"name": "x"}).status_code == 401


def test_map_gives_every_placed_ticket_with_its_cluster(client) -> None:
    body = client.get("/map?limit=100").get_json()
    assert body["run_id"] and body["total"] == 160 and len(body["points"]) == 100
    topic_of = {c["cluster_id"]: c["topic_id"] for c in _clusters(client)}
    for p in body["points"]:
        assert 0.0 <= p["x"] <= 1.0 and 0.0 <= p["y"] <= 1.0
        assert p["cluster_id"] in topic_of and p["text"]
        assert p["topic_id"] == topic_of[p["cluster_id"]]  # the page colours the map by it
    spec = client.get("/openapi.json").get_json()["components"]["schemas"]["MapPoint"]
    assert "topic_id" in spec["properties"]
    assert client.get("/map?limit=0").status_code == 400


def test_rename_merge_split_and_not_outlier_through_the_api(client) -> None:
    first, second = _clusters(client)[:2]
    resp = client.patch(f"/clusters/{first['cluster_id']}", json={"name": "Refund requests"})
    assert resp.status_code == 200 and resp.get_json()["type"] == "rename"
    renamed = client.get(f"/clusters/{first['cluster_id']}").get_json()
    assert renamed["name"] == "Refund requests" and renamed["pinned"]
    assert any(e["event"] == "edit:rename" for e in renamed["lineage"])

    hits = client.get(f"/search?q=x&limit=5&cluster_id={second['cluster_id']}").get_json()["hits"]
    chosen = [h["ticket_id"] for h in hits[:3]]
    resp = client.post(
        f"/clusters/{second['cluster_id']}/split", json={"ticket_ids": chosen, "name": "Split off"}
    )
    assert resp.status_code == 201
    new_id = resp.get_json()["cluster_id"]
    assert {client.get(f"/tickets/{t}").get_json()["cluster_id"] for t in chosen} == {new_id}

    resp = client.post(f"/clusters/{first['cluster_id']}/merge", json={"cluster_id": new_id})
    assert resp.status_code == 200
    ids = {c["cluster_id"] for c in _clusters(client)}
    assert new_id not in ids and first["cluster_id"] in ids
    assert client.get(f"/tickets/{chosen[0]}").get_json()["cluster_name"] == "Refund requests"

    outlier = client.get("/outliers?limit=1").get_json()["outliers"][0]["ticket_id"]
    assert client.post(f"/tickets/{outlier}/not-outlier").status_code == 200
    assert client.get(f"/tickets/{outlier}").get_json()["is_outlier"] is False
    assert [e["type"] for e in client.get("/edits").get_json()["edits"]] == [
        "not_outlier",
        "merge",
        "split",
        "rename",
    ]


def test_bad_edits_get_json_reasons(client) -> None:
    cid = _clusters(client)[0]["cluster_id"]
    cases = [
        ("PATCH", f"/clusters/{cid}", {"name": ""}, 422),
        ("PATCH", f"/clusters/{cid}", {"name": " \t\u3000"}, 422),
        ("PATCH", f"/clusters/{cid}", {"name": "ok", "colour": "red"}, 422),
        ("PATCH", "/clusters/999", {"name": "ok"}, 404),
        ("POST", f"/clusters/{cid}/merge", {"cluster_id": cid}, 409),
        ("POST", f"/clusters/{cid}/merge", {"cluster_id": 999}, 404),
        ("POST", f"/clusters/{cid}/split", {"ticket_ids": [], "name": "x"}, 422),
        ("POST", f"/clusters/{cid}/split", {"ticket_ids": ["t0-1"], "name": "\n"}, 422),
        ("POST", f"/clusters/{cid}/split", {"ticket_ids": ["nope"], "name": "x"}, 404),
        ("POST", "/tickets/nope/not-outlier", None, 404),
    ]
    for method, path, body, status in cases:
        resp = client.open(path, method=method, json=body)
        assert resp.status_code == status, (path, body, resp.get_json())
        assert resp.get_json()["error"]
    assert client.get("/edits").get_json()["edits"] == []


def test_alerts_route_lists_stored_alerts(client, api_store) -> None:
    store, _ = api_store
    assert client.get("/alerts").get_json() == {"alerts": []}
    store.save_record(
        "alert",
        "r:born:7",
        {
            "alert_id": "r:born:7",
            "rule": "born",
            "run_id": "r",
            "cluster_id": 7,
            "size": 30,
            "reason": "new",
            "created_at": "2026-01-01T00:00:00Z",
        },
    )
    assert [a["alert_id"] for a in client.get("/alerts").get_json()["alerts"]] == ["r:born:7"]


def test_edits_that_conflict_with_the_clusters_are_409(client) -> None:
    """Schema-valid edits the current state refuses: the document's 409, and nothing changes."""
    before = _clusters(client)
    first, second = before[:2]
    a, b = first["cluster_id"], second["cluster_id"]
    outsider = client.get(f"/search?q=x&limit=1&cluster_id={b}").get_json()["hits"][0]["ticket_id"]
    members = [h["ticket_id"] for h in client.get(f"/search?q=x&limit=100&cluster_id={a}").get_json()["hits"]]
    assert len(members) == first["size"]
    cases = [
        (f"/clusters/{a}/merge", {"cluster_id": a}, "into itself"),
        (f"/clusters/{a}/split", {"ticket_ids": [outsider], "name": "moved"}, f"not in cluster {a}"),
        (f"/clusters/{a}/split", {"ticket_ids": members, "name": "all of it"}, "leave tickets behind"),
    ]
    for path, body, reason in cases:
        resp = client.post(path, json=body)
        assert resp.status_code == 409 and reason in resp.get_json()["error"], resp.get_json()
    assert _clusters(client) == before
    assert client.get("/edits").get_json()["edits"] == []


def test_the_name_check_is_the_documented_pattern(client) -> None:
    """A name is accepted exactly when the document's pattern matches it, to Python's regex engine and
    to jsonschema-rs's alike (white space to either does not count)."""
    spec = client.get("/openapi.json").get_json()["components"]["schemas"]["RenameIn"]
    valid = jsonschema_rs.Draft202012Validator(spec).is_valid
    pattern = spec["properties"]["name"]["pattern"]
    cid = _clusters(client)[0]["cluster_id"]
    blank = [" \t", "\x1c", "\x85", "\ufeff", "\u2003", "\u3000\n"]
    for name in ["x", " padded ", "\x1cA", "名前", *blank]:
        documented = re.search(pattern, name) is not None
        assert documented == valid({"name": name}) == (name not in blank), name
        resp = client.patch(f"/clusters/{cid}", json={"name": name})
        assert resp.status_code == (200 if documented else 422), (name, resp.get_json())
