"""Every route's work is bounded by its answer, not by the history (issue 13): the points each route
reads from the store are counted at two store sizes, and retention keeps runs and alerts bounded."""

from __future__ import annotations

from typing import Any

from api import create_app
from constellate.alerts import ALERT_KIND
from constellate.config import Settings
from constellate.edits import rename_cluster
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from tests.topics import topic_data


class Counting:
    """A collection that counts the points it hands back (scroll, retrieve, query, facet)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.points = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def scroll(self, *args: Any, **kwargs: Any):
        records, offset = self.inner.scroll(*args, **kwargs)
        self.points += len(records)
        return records, offset

    def retrieve(self, *args: Any, **kwargs: Any):
        found = self.inner.retrieve(*args, **kwargs)
        self.points += len(found)
        return found

    def query(self, *args: Any, **kwargs: Any):
        found = self.inner.query(*args, **kwargs)
        self.points += len(found)
        return found

    def facet(self, *args: Any, **kwargs: Any):
        found = self.inner.facet(*args, **kwargs)
        self.points += len(found)
        return found


ROUTES = [
    "/clusters",
    "/clusters/{cid}",
    "/outliers?limit=25",
    "/map?limit=100",
    "/runs?limit=5",
    "/alerts?limit=5",
    "/edits?limit=5",
    "/search?q=refund%20money&limit=10",
    "/search?q=refund%20money&limit=10&cluster_id={cid}",
    "/tickets/t0-1",
    "/metrics",
]


def _reads(tmp_path, hash_embedder, redis_url, per_topic: int) -> dict[str, int]:
    settings = Settings(  # PCA for the fit and the map: the point counts are what is measured here
        data_dir=tmp_path / f"n{per_topic}",
        min_cluster_size=20,
        umap_min_points=100_000,
        map_points=150,
        keep_runs=3,
    )
    store = edge_store(settings)
    store.ensure_collections(32)
    tickets, vectors, _ = topic_data(5, per_topic)
    store.upsert_tickets(tickets, vectors)
    namer = KeyBERTNamer(hash_embedder)
    for _ in range(5):  # a history of runs (retention keeps 3), edits and alerts
        recluster(store, settings, namer=namer)
    first = store.list_clusters(store.get_state()["current_run"])[0].payload["cluster_id"]
    for i in range(8):
        rename_cluster(store, first, f"name {i}")
    for i in range(30):
        store.save_record(
            ALERT_KIND, f"a{i}", {"alert_id": f"a{i}", "created_at": f"2026-01-01T00:00:{i:02d}Z"}
        )
    counted = {name: Counting(getattr(store, name)) for name in ("tickets", "clusters", "runs", "map_points")}
    for name, wrapper in counted.items():
        setattr(store, name, wrapper)
    client = create_app(settings, store=store, embedder=hash_embedder, redis_url=redis_url).test_client()
    cid = client.get("/clusters").get_json()["clusters"][0]["cluster_id"]
    out = {}
    try:
        for route in ROUTES:
            for wrapper in counted.values():
                wrapper.points = 0
            assert client.get(route.format(cid=cid)).status_code == 200, route
            out[route] = sum(w.points for w in counted.values())
        assert len(store.list_runs(limit=100)) == 3  # retention: the last 3 runs
    finally:
        store.close()
    return out


def test_routes_read_the_same_number_of_points_at_four_times_the_tickets(tmp_path, hash_embedder, redis_url):
    small = _reads(tmp_path, hash_embedder, redis_url, 100)  # 500 tickets
    large = _reads(tmp_path, hash_embedder, redis_url, 400)  # 2,000 tickets
    print("points read per route (500 -> 2,000 tickets):", {r: (small[r], large[r]) for r in ROUTES})
    assert large == small
    assert large["/outliers?limit=25"] <= 25 + 10
    assert large["/map?limit=100"] <= 100 + 10 and large["/edits?limit=5"] == 5


def test_retention_keeps_the_newest_runs_and_alerts(store) -> None:
    store.ensure_collections(4)
    for i in range(12):
        store.save_run(
            {"run_id": f"r{i:02d}", "started_at": f"2026-01-01T00:00:{i:02d}Z", "status": "succeeded"}
        )
        store.save_record(
            ALERT_KIND, f"a{i}", {"alert_id": f"a{i}", "created_at": f"2026-01-01T00:00:{i:02d}Z"}
        )
    assert store.prune_records("run", 5) == 7 and store.prune_records(ALERT_KIND, 3) == 9
    assert [r["run_id"] for r in store.list_runs(limit=50)] == ["r11", "r10", "r09", "r08", "r07"]
    assert [a["alert_id"] for a in store.list_records(ALERT_KIND)] == ["a11", "a10", "a9"]
    assert store.prune_records("run", 5) == 0
