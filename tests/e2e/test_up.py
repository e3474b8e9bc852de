"""`constellate up` as a subprocess: real Valkey, real qdrant-edge, real model, real HTTP."""

from __future__ import annotations

import json

import pytest

from constellate.datasets import load_banking77
from tests.e2e.helpers import http, metric, post_texts, spawn, start_up, stop_process, wait_for

pytestmark = pytest.mark.slow


def test_constellate_up_end_to_end(tmp_path) -> None:
    proc, base = start_up(tmp_path / "d", tmp_path / "up.log")
    try:
        texts = [item.text for item in load_banking77(["test"])[:2000]]
        post_texts(base, texts, [f"e{i}" for i in range(2000)])

        def drained() -> bool:
            text = http("GET", f"{base}/metrics")[1]
            return (
                metric(text, "constellate_tickets") == 2000
                and metric(text, "constellate_stream_pending") == 0
                and metric(text, "constellate_stream_undelivered") == 0
            )

        wait_for(drained, 240, "all 2,000 tickets to be stored")
        status, body = http("POST", f"{base}/recluster")
        assert status == 202 and body["task_id"]

        def finished() -> dict | None:
            runs = http("GET", f"{base}/runs")[1]
            done = [r for r in runs["runs"] if r["status"] in ("succeeded", "failed")]
            return done[0] if done else None

        run = wait_for(finished, 300, "the recluster run", interval=1)
        assert run["status"] == "succeeded" and run["n_points"] == 2000
        clusters = http("GET", f"{base}/clusters")[1]["clusters"]
        assert len(clusters) >= 10 and sum(c["size"] for c in clusters) == 2000  # every ticket labelled
        assert all(c["name"] and c["name"] != "unnamed" for c in clusters)

        ticket = http("GET", f"{base}/tickets/e7")[1]
        assert ticket["cluster_id"] is not None and ticket["assigned_by"] == "recluster"

        # a fresh ticket is labelled at once against the live clusters
        assert http("POST", f"{base}/tickets", {"id": "late-1", "text": texts[7]})[0] == 202
        late = wait_for(
            lambda: (r := http("GET", f"{base}/tickets/late-1"))[0] == 200 and r[1], 60, "late ticket"
        )
        assert late["assigned_by"] == "ingest" and late["cluster_id"] == ticket["cluster_id"]

        target = clusters[0]["cluster_id"]
        status, found = http("GET", f"{base}/search?q=my+card+does+not+work&cluster_id={target}&limit=50")
        assert status == 200 and found["hits"]
        assert all(hit["cluster_id"] == target for hit in found["hits"])

        status, outliers = http("GET", f"{base}/outliers?limit=20")
        assert status == 200 and len(outliers["outliers"]) == 20
        assert all(o["is_outlier"] for o in outliers["outliers"])

        # `constellate recluster` while `up` holds the store: handed to up's worker, and its answer comes
        # back (up's worker runs in a thread: it once stored no results, and the CLI waited in vain)
        cli = spawn(["recluster", "--json", "--data-dir", str(tmp_path / "d")], {}, tmp_path / "cli.log")
        code = cli.wait(300)
        said = (tmp_path / "cli.log").read_text()
        assert code == 0, said[-2000:]
        answer = json.loads(said[said.index("{") : said.rindex("}") + 1])
        assert answer["status"] in ("succeeded", "skipped"), answer
    finally:
        code = stop_process(proc)
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert "stopped" in (tmp_path / "up.log").read_text()
