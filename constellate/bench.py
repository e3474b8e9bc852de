"""Benchmarks: every figure is printed with its ratio to a baseline measured in the same run.

Run with ``scripts/bench [--quick|--full] [--json PATH]`` (or ``constellate bench``). Targets are
printed beside the figures; nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from constellate.config import Settings
from constellate.datasets import load_banking77
from constellate.embedding import SentenceTransformerEmbedder, load_embedder, normalize
from constellate.tickets import Ticket

Say = Callable[[str], None]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bench_ingest(texts: Sequence[str], say: Say) -> dict[str, Any]:
    """The ingest code path into the embedded store vs bare ``SentenceTransformer.encode``."""
    from constellate.ingest import ingest_tickets
    from constellate.store import edge_store

    embedder = load_embedder()
    assert isinstance(embedder, SentenceTransformerEmbedder)
    embedder.embed(list(texts[:64]))  # warm
    _, encode_s = _timed(lambda: embedder.model.encode(list(texts), batch_size=64, normalize_embeddings=True))
    tickets = [Ticket(id=f"b{i}", text=t) for i, t in enumerate(texts)]
    with tempfile.TemporaryDirectory() as tmp:
        store = edge_store(Settings(data_dir=Path(tmp)))
        try:
            _, ingest_s = _timed(lambda: (ingest_tickets(tickets, store, embedder), store.optimize()))
        finally:
            store.close()
    out = {
        "n": len(texts),
        "encode_per_s": round(len(texts) / encode_s, 1),
        "per_s": round(len(texts) / ingest_s, 1),
        "ratio_vs_encode": round(encode_s / ingest_s, 3),
    }
    say(
        f"ingest  {out['n']} texts: encode {out['encode_per_s']}/s, ingest path {out['per_s']}/s -> "
        f"{out['ratio_vs_encode']}x encode (target >= 0.9x)"
    )
    return out


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


def bench_encoder(texts: Sequence[str], say: Say, cache_dir: Path) -> dict[str, Any]:
    """ONNX Runtime backends vs torch encode of the same texts; mean cosine to torch's vectors."""
    torch_embedder = load_embedder()
    torch_embedder.embed(list(texts[:64]))
    reference, torch_s = _timed(lambda: torch_embedder.embed(list(texts)))
    results = {}
    for backend in ("onnx", "onnx-int8"):
        embedder = load_embedder(backend=backend, cache_dir=cache_dir)
        embedder.embed(list(texts[:64]))
        vectors, seconds = _timed(lambda e=embedder: e.embed(list(texts)))
        cosine = float(np.mean(np.sum(vectors * reference, axis=1)))
        results[backend] = {"ratio_vs_torch": round(torch_s / seconds, 2), "cosine": round(cosine, 4)}
        say(f"encoder {backend}: {results[backend]['ratio_vs_torch']}x torch at cosine {cosine:.4f}")
    good = [b for b, r in results.items() if r["cosine"] >= 0.99]
    best = max(good, key=lambda b: results[b]["ratio_vs_torch"]) if good else "onnx"
    out = {
        "backend": best,
        **results[best],
        "n": len(texts),
        "torch_per_s": round(len(texts) / torch_s, 1),
        "all": results,
    }
    say(
        f"encoder chosen {best}: {out['ratio_vs_torch']}x torch, cosine {out['cosine']} (target >= 1.5x at >= 0.99)"
    )
    return out


def scale_vectors(base: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vectors: the real ones, then copies with small jitter (and the row each came from)."""
    rows = np.arange(n) % len(base)
    vectors = base[rows].copy()
    if n > len(base):
        rng = np.random.default_rng(seed)
        extra = slice(len(base), n)
        vectors[extra] += rng.normal(scale=0.02, size=(n - len(base), base.shape[1])).astype(np.float32)
        vectors = normalize(vectors)
    return vectors, rows


def fill_store(data_dir: Path, vectors: np.ndarray, texts: Sequence[str], rows: np.ndarray) -> None:
    """Load ``vectors`` as tickets into the embedded store under ``data_dir``."""
    from constellate.store import edge_store

    store = edge_store(Settings(data_dir=data_dir))
    try:
        store.ensure_collections(vectors.shape[1])
        for start in range(0, len(vectors), 5000):
            end = min(len(vectors), start + 5000)
            batch = [Ticket(id=f"x{i}", text=texts[rows[i]]) for i in range(start, end)]
            store.upsert_tickets(batch, vectors[start:end])
        store.optimize()
    finally:
        store.close()


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss would include the parent's peak at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _recluster_child(data_dir: str) -> None:
    """Run one recluster in this (child) process and print seconds and peak RSS as JSON."""
    from constellate.naming import KeyBERTNamer
    from constellate.recluster import recluster
    from constellate.store import edge_store

    settings = Settings(data_dir=Path(data_dir))
    namer = KeyBERTNamer(load_embedder())
    rss_before = _peak_rss_mb()
    store = edge_store(settings)
    try:
        run, seconds = _timed(lambda: recluster(store, settings, namer=namer))
    finally:
        store.close()
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "stages": run["seconds"],
                "clusters": run["n_clusters"],
                "peak_rss_mb": round(_peak_rss_mb()),
                "rss_model_mb": round(rss_before),
            }
        )
    )


def bench_recluster(sizes: Sequence[int], base: np.ndarray, texts: Sequence[str], say: Say) -> dict[str, Any]:
    """A full run (read, cluster, match, name, write, switch) per size, each in a fresh process."""
    out: dict[str, Any] = {}
    for n in sizes:
        vectors, rows = scale_vectors(base, n)
        with tempfile.TemporaryDirectory() as tmp:
            fill_store(Path(tmp), vectors, texts, rows)
            del vectors
            proc = subprocess.run(
                [sys.executable, "-m", "constellate.bench", "recluster-child", tmp],
                capture_output=True,
                text=True,
                check=True,
            )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        out[str(n)] = result
        say(
            f"recluster {n}: {result['seconds']} s, peak RSS {result['peak_rss_mb']} MB "
            f"(model alone {result['rss_model_mb']} MB; stages {result['stages']})"
        )
    return out


def bench_bertopic(
    vectors: np.ndarray, texts: Sequence[str], labels: Sequence[str], say: Say
) -> dict[str, Any] | None:
    """BERTopic 0.17 defaults vs constellate's pipeline on the same embeddings (gold labels scored)."""
    try:
        from bertopic import BERTopic
    except ImportError:
        say("bertopic: not installed (scripts/bench installs it); section skipped")
        return None
    from constellate.clustering import UMAPReducer
    from constellate.evaluate import external_metrics
    from constellate.naming import KeyBERTNamer
    from constellate.recluster import recluster
    from constellate.store import edge_store

    UMAPReducer().fit_transform(vectors[:5000])  # compile numba's kernels first: neither side pays it
    (topics, _), bt_s = _timed(lambda: BERTopic().fit_transform(list(texts), embeddings=vectors))
    bt = external_metrics(labels, topics)
    with tempfile.TemporaryDirectory() as tmp:
        fill_store(Path(tmp), vectors, texts, np.arange(len(texts)))
        settings = Settings(data_dir=Path(tmp))
        store = edge_store(settings)
        try:
            namer = KeyBERTNamer(load_embedder())
            _, ours_s = _timed(lambda: recluster(store, settings, namer=namer))
            slot = store.get_state()["slot"]
            predicted = {}
            for page in store.iter_vectors(fields=["ticket_id", f"{slot}_cluster_id"]):
                for payload in page.payloads:
                    predicted[payload["ticket_id"]] = payload[f"{slot}_cluster_id"]
        finally:
            store.close()
    ours = external_metrics(labels, [predicted[f"x{i}"] for i in range(len(texts))])
    out = {
        "time_ratio": round(ours_s / bt_s, 3),
        "seconds": round(ours_s, 2),
        "bertopic_seconds": round(bt_s, 2),
        "v_measure": ours["v_measure"],
        "ari": ours["ari"],
        "bertopic_v_measure": bt["v_measure"],
        "bertopic_ari": bt["ari"],
        "bertopic_topics": len(set(topics)),
    }
    say(
        f"bertopic: ours {ours_s:.1f} s V {ours['v_measure']} ARI {ours['ari']} vs BERTopic {bt_s:.1f} s "
        f"V {bt['v_measure']} ARI {bt['ari']} -> time ratio {out['time_ratio']} (target <= 0.33, better V and ARI)"
    )
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
    from constellate.recluster import recluster
    from constellate.store import edge_store

    embedder = load_embedder()
    queries = list(texts[:200])
    embedder.embed(queries[:8])
    query_embedder = load_embedder(
        backend=backend, cache_dir=Path(tempfile.gettempdir()) / "constellate-bench-models"
    )
    query_embedder.embed(queries[:8])
    _, embed_s = _timed(lambda: [query_embedder.embed([q]) for q in queries[:50]])
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
    from constellate.recluster import recluster
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


def bench_assign(say: Say, sizes: Sequence[int] = (1000, 10_000), dim: int = 384) -> dict[str, Any]:
    """Labelling one new ticket (and a batch of 64) against k centroids."""
    from constellate.clustering import nearest_centroid

    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for k in sizes:
        centroids = normalize(rng.normal(size=(k, dim)).astype(np.float32))
        one = normalize(rng.normal(size=(1, dim)).astype(np.float32))
        batch = normalize(rng.normal(size=(64, dim)).astype(np.float32))
        reps = 200
        _, single_s = _timed(lambda c=centroids, v=one, r=reps: [nearest_centroid(v, c) for _ in range(r)])
        _, batch_s = _timed(lambda c=centroids, v=batch: [nearest_centroid(v, c) for _ in range(20)])
        out[str(k)] = {
            "ms_per_ticket": round(single_s / reps * 1000, 4),
            "ms_per_ticket_in_batch": round(batch_s / 20 / 64 * 1000, 4),
        }
        say(
            f"assign vs {k} clusters: {out[str(k)]['ms_per_ticket']} ms for one ticket, {out[str(k)]['ms_per_ticket_in_batch']} ms each in a batch of 64"
        )
    return out


def run_bench(mode: str, say: Say, cache_dir: Path) -> dict[str, Any]:
    """Run every section for ``mode`` in ``("smoke", "quick", "full")``."""
    sizes = {
        "smoke": {
            "texts": 200,
            "recluster": [400],
            "search": 1000,
            "search_s": 3.0,
            "bertopic": False,
            "page": 400,
        },
        "quick": {
            "texts": 2000,
            "recluster": [10_000, 100_000],
            "search": 20_000,
            "search_s": 15.0,
            "bertopic": True,
            "page": 20_000,
        },
        "full": {
            "texts": 13_083,
            "recluster": [10_000, 100_000, 1_000_000],
            "search": 100_000,
            "search_s": 30.0,
            "bertopic": True,
            "page": 100_000,
        },
    }[mode]
    items = load_banking77()
    texts = [i.text for i in items]
    results: dict[str, Any] = {"mode": mode}
    results["ingest"] = bench_ingest(texts[: sizes["texts"]], say)
    results["ingest"]["stream"] = bench_stream(
        texts[: sizes["texts"]], results["ingest"]["encode_per_s"], say
    )
    results["encoder"] = bench_encoder(texts[: sizes["texts"]], say, cache_dir)
    say("embedding Banking77 once for the recluster, BERTopic and search sections …")
    base = load_embedder().embed(texts if mode != "smoke" else texts[:1000])
    results["recluster"] = bench_recluster(sizes["recluster"], base, texts, say)
    if sizes["bertopic"]:
        bt = bench_bertopic(base, texts, [i.label for i in items], say)
        if bt is not None:
            results["bertopic"] = bt
    results["search"] = bench_search(
        sizes["search"], base, texts, say, seconds=sizes["search_s"], backend=results["encoder"]["backend"]
    )
    results["page"] = bench_page(sizes["page"], base, texts, say)
    results["assign"] = bench_assign(say)
    return results


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "recluster-child":
    _recluster_child(sys.argv[2])
