"""Who may run and switch: the run lock (a lease) and the fence on the state (issue 11, items 2 and 3)."""

from __future__ import annotations

import json

import pytest
import redis
from click.testing import CliRunner

from constellate import cli
from constellate.config import Settings
from constellate.exceptions import LeaseLost
from constellate.naming import KeyBERTNamer
from constellate.pipeline import Plan, Stages, label_range, prepare, recluster
from constellate.pipeline.switch import FencedLease, claim
from constellate.run_lock import NoLease, RunLock
from constellate.store import edge_store
from tests.topics import topic_data
from tests.views import all_views


@pytest.fixture
def live(tmp_path, hash_embedder):
    settings = Settings(data_dir=tmp_path / "d", min_cluster_size=20)
    store = edge_store(settings)
    store.ensure_collections(32)
    tickets, vectors, _ = topic_data(5, 60)
    store.upsert_tickets(tickets, vectors)
    namer = KeyBERTNamer(hash_embedder)
    first = recluster(store, settings, namer=namer)
    # new tickets, so the next run has labels to write
    fresh, vectors, _ = topic_data(1, 40, seed=4, prefix="new", start=6)
    store.upsert_tickets(fresh, vectors)
    yield store, settings, namer, first
    store.close()


def _on_write(action):
    def progress(message: str) -> None:
        if message.startswith("write:"):
            action()

    return progress


def test_a_run_that_lost_its_lease_stops_and_does_not_switch(live, redis_url) -> None:
    store, settings, namer, first = live
    client = redis.Redis.from_url(redis_url)
    lock = RunLock(client, timeout=60)
    assert lock.acquire()
    before = all_views(store)
    other = RunLock(client, timeout=60)

    def lose_it() -> None:  # the lease ran out while this process was paused; another run took it
        client.delete(lock.key)
        assert other.acquire()
        lock.renew()  # the heartbeat's next beat finds the lock gone

    with pytest.raises(LeaseLost):
        recluster(store, settings, namer=namer, lease=lock, progress=_on_write(lose_it))
    run = store.list_runs(limit=1)[0]
    assert run["run_id"] == lock.run_id and run["status"] == "failed" and "lost" in run["error"]
    assert store.get_state()["current_run"] == first["run_id"]
    assert all_views(store) == before  # readers never saw a label of the lost run


def test_a_run_superseded_by_a_newer_claim_cannot_switch(live) -> None:
    store, settings, namer, first = live
    before = all_views(store)
    # a newer run claims the state while this one writes (its own lease looked fine to it)
    progress = _on_write(lambda: claim(store, "run-newer"))
    with pytest.raises(LeaseLost, match="superseded"):
        recluster(store, settings, namer=namer, progress=progress)
    assert store.get_state()["current_run"] == first["run_id"]
    assert store.get_state()["claim"] == "run-newer"
    assert all_views(store) == before


def test_the_next_run_repairs_what_a_failed_run_left(live) -> None:
    store, settings, namer, _ = live
    with pytest.raises(LeaseLost):
        recluster(store, settings, namer=namer, progress=_on_write(lambda: claim(store, "run-newer")))
    failed = store.list_runs(limit=1)[0]
    run = recluster(store, settings, namer=namer)
    assert run["status"] == "succeeded" and run["n_points"] == 340
    live_ids = {int(k) for k in run["sizes"]}
    views = all_views(store)
    assert all(v["cluster_id"] in live_ids and v["label_run"] != failed["run_id"] for v in views.values())


def test_the_cli_waits_for_a_run_that_holds_the_lock(live, redis_url, monkeypatch, hash_embedder) -> None:
    store, settings, _, first = live
    store.close()
    monkeypatch.setenv("CONSTELLATE_REDIS_URL", redis_url)
    monkeypatch.setenv("CONSTELLATE_MIN_CLUSTER_SIZE", "20")
    monkeypatch.setattr(cli.recluster, "_naming", lambda s: (hash_embedder, KeyBERTNamer(hash_embedder)))
    holder = RunLock(redis.Redis.from_url(redis_url), timeout=60)
    assert holder.acquire()
    args = ["recluster", "--json", "--data-dir", str(settings.data_dir)]
    refused = CliRunner().invoke(cli.main, args)
    assert refused.exit_code == 1 and holder.run_id in refused.output
    holder.release()
    done = CliRunner().invoke(cli.main, args)
    assert done.exit_code == 0, done.output
    run = json.loads(done.stdout)
    assert run["status"] == "succeeded" and run["run_id"] != first["run_id"]
    reopened = edge_store(settings)
    try:
        runs = reopened.list_runs()
        assert [r["status"] for r in runs] == ["succeeded", "succeeded"]  # the refused call wrote nothing
        assert reopened.get_state()["current_run"] == run["run_id"]
    finally:
        reopened.close()


def test_a_part_of_a_superseded_run_writes_nothing(live) -> None:
    """A fanned-out part redelivered after a newer run claimed and switched (it could take the free
    Redis lock again): the store's claim stops it before its first write."""
    store, settings, namer, _ = live
    stale = prepare(store, settings, namer, NoLease(), Stages())
    assert isinstance(stale, Plan)
    newer = recluster(store, settings, namer=namer)  # claims after the stale plan, switches
    assert newer["status"] == "succeeded"
    before = all_views(store)
    fenced = FencedLease(NoLease(stale.run_id), store)
    with pytest.raises(LeaseLost, match="claim"):
        fenced.confirm()  # what a redelivered part does first
    with pytest.raises(LeaseLost, match="claim"):
        label_range(store, stale, FencedLease(NoLease(stale.run_id), store), page_size=64)
    assert all_views(store) == before
    assert store.get_run(stale.run_id)["status"] == "failed"  # abandoned by the newer claim


def test_a_run_stopped_after_its_switch_stays_succeeded_and_its_labels_are_not_rewritten(live) -> None:
    """Killed between the switch and saving its record: the next run must not call the live run
    failed (that made it rewrite every label the live run wrote)."""
    store, settings, namer, _ = live
    run = recluster(store, settings, namer=namer)
    store.save_run({**run, "status": "running"})  # as the record stood when the process died
    after = recluster(store, settings, namer=namer)
    assert store.get_run(run["run_id"])["status"] == "succeeded"
    assert after["status"] == "succeeded" and after["written"] == 0  # nothing changed since
