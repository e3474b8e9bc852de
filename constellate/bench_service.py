"""Benchmark sections that measure the running service: ingest through the API and the stream,
``/search`` under concurrent clients, and what the page loads. Ratios are to baselines measured in
the same run; nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from constellate.bench_data import Say, fill_store, scale_vectors, timed
from constellate.config import Settings
from constellate.embedding import load_embedder


class RunningService:
    """`constellate up` as a subprocess on a free port and ``data_dir``; a context manager."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        import socket

        self.data_dir = data_dir
        self.env = env or {}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> RunningService:
        import http.client

        self.log = (self.data_dir / "up.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "constellate.cli",
                "up",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("constellate up did not come up")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return (
            json.loads(raw)
            if resp.getheader("Content-Type", "").startswith("application/json")
            else raw.decode()
        )

    def metric(self, name: str) -> float:
        for line in self.request("GET", "/metrics").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=120)
        self.log.close()


def bench_stream(texts: Sequence[str], encode_per_s: float, say: Say) -> dict[str, Any]:
    """Tickets posted to a running `constellate up` until stored, vs bare encode (same texts)."""
    with tempfile.TemporaryDirectory() as tmp, RunningService(Path(tmp)) as service:
        start = time.perf_counter()
        for i in range(0, len(texts), 500):
            batch = [{"id": f"s{j}", "text": texts[j]} for j in range(i, min(len(texts), i + 500))]
            service.request("POST", "/tickets", {"tickets": batch})
        while not (
            service.metric("constellate_tickets") >= len(texts)
            and service.metric("constellate_stream_undelivered") == 0
            and service.metric("constellate_stream_pending") == 0
        ):
            time.sleep(0.2)
        seconds = time.perf_counter() - start
    per_s = len(texts) / seconds
    out = {"n": len(texts), "per_s": round(per_s, 1), "ratio_vs_encode": round(per_s / encode_per_s, 3)}
    say(f"ingest via API + stream ({len(texts)}): {out['per_s']}/s -> {out['ratio_vs_encode']}x encode")
    return out


def bench_search(
    n: int,
    base: np.ndarray,
    texts: Sequence[str],
    say: Say,
    seconds: float = 20.0,
    clients: int = 8,
    backend: str = "torch",
) -> dict[str, Any]:
    """/search with and without a cluster filter on a running `constellate up` (query encoder
    ``backend``), under a bounded concurrent load."""
    import http.client
    import urllib.parse

    from constellate.naming import KeyBERTNamer
    from constellate.pipeline import recluster
    from constellate.store import edge_store

    embedder = load_embedder()
    queries = list(texts[:200])
    embedder.embed(queries[:8])
    query_embedder = load_embedder(
        backend=backend, cache_dir=Path(tempfile.gettempdir()) / "constellate-bench-models"
    )
    query_embedder.embed(queries[:8])
    _, embed_s = timed(lambda: [query_embedder.embed([q]) for q in queries[:50]])
    with tempfile.TemporaryDirectory() as tmp:
        vectors, rows = scale_vectors(base, n)
        fill_store(Path(tmp), vectors, texts, rows)
        del vectors
        settings = Settings(data_dir=Path(tmp))
        store = edge_store(settings)
        try:
            recluster(store, settings, namer=KeyBERTNamer(embedder))
            cluster_ids = [
                int(r.payload["cluster_id"]) for r in store.list_clusters(store.get_state()["current_run"])
            ]
        finally:
            store.close()
        with RunningService(Path(tmp), {"CONSTELLATE_EMBED_BACKEND": backend}) as service:
            port = service.port
            latencies: dict[bool, list[float]] = {True: [], False: []}
            errors = [0]
            stop_at = time.monotonic() + seconds
            lock = threading.Lock()

            def client(k: int) -> None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                i = k
                while time.monotonic() < stop_at:
                    filtered = i % 2 == 0
                    params = {"q": queries[i % len(queries)], "limit": 10}
                    if filtered:
                        params["cluster_id"] = cluster_ids[i % len(cluster_ids)]
                    start = time.perf_counter()
                    conn.request("GET", "/search?" + urllib.parse.urlencode(params))
                    resp = conn.getresponse()
                    resp.read()
                    took = time.perf_counter() - start
                    with lock:
                        if resp.status == 200:
                            latencies[filtered].append(took)
                        else:
                            errors[0] += 1
                    i += clients

            threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
            began = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - began

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)) * 1000, 1) if values else float("nan")

    total = len(latencies[True]) + len(latencies[False])
    out = {
        "n": n,
        "backend": backend,
        "clients": clients,
        "rps": round(total / elapsed, 1),
        "errors": errors[0],
        "p50_ms_filtered": pct(latencies[True], 50),
        "p95_ms_filtered": pct(latencies[True], 95),
        "p99_ms_filtered": pct(latencies[True], 99),
        "p50_ms": pct(latencies[False], 50),
        "p95_ms": pct(latencies[False], 95),
        "p99_ms": pct(latencies[False], 99),
        "query_embed_ms": round(embed_s / 50 * 1000, 2),
    }
    say(
        f"search {n} tickets, {clients} clients, {backend} query encoder: {out['rps']} req/s, filtered p50/p95/p99 "
        f"{out['p50_ms_filtered']}/{out['p95_ms_filtered']}/{out['p99_ms_filtered']} ms, unfiltered "
        f"{out['p50_ms']}/{out['p95_ms']}/{out['p99_ms']} ms, query embedding {out['query_embed_ms']} ms, "
        f"{out['errors']} errors (targets: p99 <= 50 ms filtered, >= 200 req/s)"
    )
    return out


PAGE_ROUTES = (
    "/",
    "/clusters",
    "/clusters/{cid}",
    "/map?limit=5000",
    "/outliers?limit=25",
    "/runs?limit=20",
    "/alerts",
)


def bench_page(n: int, base: np.ndarray, texts: Sequence[str], say: Say) -> dict[str, Any]:
    """What the page loads, at ``n`` tickets after a recluster: median ms per route (5 calls each, in
    process) and its ratio to ``/openapi.json`` (a static answer) measured alongside."""
    from api import create_app
    from constellate.naming import KeyBERTNamer
    from constellate.pipeline import recluster
    from constellate.store import edge_store

    vectors, rows = scale_vectors(base, n)
    with tempfile.TemporaryDirectory() as tmp:
        fill_store(Path(tmp), vectors, texts, rows)
        settings = Settings(data_dir=Path(tmp))
        store = edge_store(settings)
        try:
            run = recluster(store, settings, namer=KeyBERTNamer(load_embedder()))
            client = create_app(
                settings, store=store, embedder=load_embedder(), redis_url="redis://127.0.0.1:9"
            ).test_client()
            cid = client.get("/clusters").get_json()["clusters"][0]["cluster_id"]

            def median_ms(path: str) -> tuple[float, int]:
                times, size = [], 0
                for _ in range(5):
                    t0 = time.perf_counter()
                    resp = client.get(path)
                    times.append(time.perf_counter() - t0)
                    size = len(resp.data)
                return round(sorted(times)[2] * 1000, 2), size

            baseline, _ = median_ms("/openapi.json")
            out: dict[str, Any] = {
                "n": n,
                "map_seconds": run["seconds"].get("map"),
                "alerts_seconds": run["seconds"].get("alerts"),
                "baseline_ms": baseline,
            }
            for route in PAGE_ROUTES:
                ms, size = median_ms(route.format(cid=cid))
                out[route] = {
                    "median_ms": ms,
                    "bytes": size,
                    "ratio_vs_openapi": round(ms / max(baseline, 1e-3), 1),
                }
        finally:
            store.close()
    say(
        f"page at {n} tickets: map layout {out['map_seconds']} s and alerts {out['alerts_seconds']} s in the run; "
        + ", ".join(f"{r} {out[r]['median_ms']} ms" for r in PAGE_ROUTES)
        + f" (/openapi.json {baseline} ms)"
    )
    return out
