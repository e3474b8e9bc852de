"""Benchmark sections that measure the running service: ingest through the API and the stream (and
what Redis holds after it), ``/search`` under wrk, and what the page loads. Ratios are to baselines
measured in the same run; nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import Say, fill_store, scale_vectors, timed
from constellate.config import Settings
from constellate.embedding import load_embedder
from constellate.warmup import WARM_DONE, WARM_FAILED


class RunningService:
    """`constellate up` as a subprocess on a free port and ``data_dir``; a context manager."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, models: Path | None = None) -> None:
        import socket

        self.data_dir = data_dir
        self.env = env or {}
        if models is not None:  # the ONNX export the bench already made: the service reuses it
            models.mkdir(parents=True, exist_ok=True)
            (data_dir / "models").symlink_to(models.resolve(), target_is_directory=True)
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

    def wait_warm(self, timeout: float = 600) -> float:
        """Wait until the service's background warm-up (numba compiling the clustering kernels, on
        one core for up to a minute) has finished: a figure measured meanwhile is the start-up's,
        not the service's. Returns the seconds waited; raises if neither end of the warm-up was
        logged within ``timeout`` (a silent wait was how a changed log line cost 600 s a section)."""
        start = time.monotonic()
        log = self.data_dir / "up.log"
        while time.monotonic() - start < timeout:
            text = log.read_text(errors="replace") if log.exists() else ""
            if WARM_DONE in text or WARM_FAILED in text:
                return time.monotonic() - start
            time.sleep(0.5)
        raise RuntimeError(f"the service logged neither {WARM_DONE!r} nor {WARM_FAILED!r} in {timeout:.0f} s")

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

    def metrics(self) -> dict[str, float]:
        """Every unlabelled sample of one /metrics scrape, by name."""
        out = {}
        for line in self.request("GET", "/metrics").splitlines():
            name, _, value = line.partition(" ")
            if value and not line.startswith("#") and "{" not in name:
                out[name] = float(value)
        return out

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=120)
        self.log.close()


def bench_ingest_api(texts: Sequence[str], say: Say, models: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tickets POSTed to a running `constellate up` (default encoder) until stored, vs bare torch,
    bare ONNX and bare OpenVINO encodes of the same texts measured just before; and what Redis holds
    afterwards."""
    from constellate.embedding import SentenceTransformerEmbedder

    texts = list(texts)
    torch_embedder = load_embedder()
    assert isinstance(torch_embedder, SentenceTransformerEmbedder)
    onnx_embedder = load_embedder(backend="onnx", cache_dir=models)
    ov_embedder = load_embedder(backend="openvino", cache_dir=models)
    for embedder in (torch_embedder, onnx_embedder, ov_embedder):
        embedder.embed(texts[:64])
    _, torch_s = timed(lambda: torch_embedder.model.encode(texts, batch_size=64, normalize_embeddings=True))
    _, onnx_s = timed(lambda: onnx_embedder.embed(texts))
    _, ov_s = timed(lambda: ov_embedder.embed(texts))
    with tempfile.TemporaryDirectory() as tmp, RunningService(Path(tmp), models=models) as service:
        service.wait_warm()  # the start-up's kernel warm-up takes a core for ~25 s: not ingestion's
        memory_before = service.metric("constellate_redis_used_memory_bytes")
        start = time.perf_counter()
        for i in range(0, len(texts), 500):
            batch = [{"id": f"s{j}", "text": texts[j]} for j in range(i, min(len(texts), i + 500))]
            service.request("POST", "/tickets", {"tickets": batch})
        while True:  # one scrape per check, twice a second: the scrapes share the service's cores
            seen = service.metrics()
            if (
                seen.get("constellate_tickets", 0) >= len(texts)
                and seen.get("constellate_stream_undelivered") == 0
                and seen.get("constellate_stream_pending") == 0
            ):
                break
            time.sleep(0.5)
        seconds = time.perf_counter() - start
        time.sleep(1.0)  # the consumer trims right after its ack: a scrape in between sees the last batch
        seen = service.metrics()
        stream_len = seen["constellate_stream_length"]
        memory_after = seen["constellate_redis_used_memory_bytes"]
        batches = seen.get("constellate_ingest_batches_total", 0)
        log = (Path(tmp) / "up.log").read_text(errors="replace")
    n = len(texts)
    backend = next(
        (f"{b} (fallback)" for b in ("torch", "onnx") if f"using the {b} encoder" in log),
        Settings().embed_backend,
    )
    api = {
        "n": n,
        "backend": backend,
        "per_s": round(n / seconds, 1),
        "torch_per_s": round(n / torch_s, 1),
        "onnx_per_s": round(n / onnx_s, 1),
        "openvino_per_s": round(n / ov_s, 1),
        "ratio_vs_torch": round(torch_s / seconds, 3),
        "ratio_vs_onnx": round(onnx_s / seconds, 3),
        "ratio_vs_openvino": round(ov_s / seconds, 3),
        "batches": int(batches),
    }
    say(
        f"ingest via API ({n} tickets POSTed until stored, {api['backend']} encoder, {api['batches']} batches): "
        f"{api['per_s']}/s vs bare torch {api['torch_per_s']}/s, bare ONNX {api['onnx_per_s']}/s and bare "
        f"OpenVINO {api['openvino_per_s']}/s -> {api['ratio_vs_torch']}x torch (target >= 1.5x), "
        f"{api['ratio_vs_onnx']}x ONNX (target >= 0.8x), {api['ratio_vs_openvino']}x OpenVINO"
    )
    redis = {
        "n": n,
        "stream_len_after": int(stream_len),
        "used_memory_mb_before": round(memory_before / 2**20, 2),
        "used_memory_mb_after": round(memory_after / 2**20, 2),
    }
    say(
        f"redis after {n} tickets through the API: stream length {redis['stream_len_after']}, used memory "
        f"{redis['used_memory_mb_after']} MB (before posting {redis['used_memory_mb_before']} MB)"
    )
    return api, redis


WRK_THREADS = 2
# Each wrk thread has its own Lua state: thread k of n sends paths k, k+n, k+2n, ... so that no path
# is sent twice before the list wraps around (distinct queries stay distinct under load).
WRK_SCRIPT = """
local paths = {%s}
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local i = -1
request = function()
  i = i + 1
  return wrk.format("GET", paths[((i * WRK_THREADS + (id or 0)) %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def load_tool() -> str:
    """Path of ``wrk`` (Debian's package), installed with apt-get when it is missing."""
    import shutil

    if shutil.which("wrk") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            subprocess.run(command, capture_output=True, check=False, env=env)
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("the /search section drives wrk; install it (apt-get install wrk)")
    return found


def run_wrk(wrk: str, port: int, paths: Sequence[str], seconds: int, connections: int) -> dict[str, Any]:
    """One wrk run over ``paths`` in turn; requests, errors and latency percentiles."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(
            (WRK_SCRIPT % ", ".join(f'"{p}"' for p in paths)).replace("WRK_THREADS", str(WRK_THREADS))
        )
        script.flush()
        proc = subprocess.run(
            [
                wrk,
                f"-t{WRK_THREADS}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "30s",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def drive_search(
    wrk: str, port: int, filtered: Sequence[str], unfiltered: Sequence[str], seconds: int, connections: int
) -> dict[bool, dict[str, Any]]:
    """Warm the service with a second of wrk, then ``seconds`` filtered and ``seconds`` unfiltered."""
    run_wrk(wrk, port, unfiltered[-20:], 1, connections)  # queries the measured runs reach last, if ever
    return {
        True: run_wrk(wrk, port, filtered, seconds, connections),
        False: run_wrk(wrk, port, unfiltered, seconds, connections),
    }


def bench_search(
    n: int,
    base: np.ndarray,
    texts: Sequence[str],
    say: Say,
    models: Path,
    seconds: float = 20.0,
    connections: int = 8,
    backend: str = "openvino",
) -> dict[str, Any]:
    """/search with and without a cluster filter on a running `constellate up` (query encoder
    ``backend``), loaded by wrk (native, so the load generator takes little of the service's
    cores) with ``connections`` connections: half the time filtered, half unfiltered."""
    import urllib.parse

    from constellate.naming import KeyBERTNamer
    from constellate.pipeline import recluster
    from constellate.store import edge_store

    wrk = load_tool()
    embedder = load_embedder()
    # distinct queries, none repeated within a wrk run at the target rate (200/s for `half` seconds)
    queries = list(dict.fromkeys(texts))[: max(200, min(len(texts), 2000))]
    query_embedder = load_embedder(backend=backend, cache_dir=models)
    warm = getattr(query_embedder, "warm_query", None)
    if warm is not None:  # as create_app does: the query models are compiled before a query is timed
        warm()
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
            # the worker's background optimize, waited for: a run's label writes move the points it
            # labels out of the indexed segments, and until it is done a search scans them (at 1M
            # right after a first run, unfiltered: 5.9 req/s, p50 1.1 s; docs/benchmarks.md)
            _, optimize_s = timed(store.optimize)
        finally:
            store.close()
        unfiltered = [f"/search?{urllib.parse.urlencode({'q': q, 'limit': 10})}" for q in queries]
        filtered = [
            f"/search?{urllib.parse.urlencode({'q': q, 'limit': 10, 'cluster_id': cluster_ids[i % len(cluster_ids)]})}"
            for i, q in enumerate(queries)
        ]
        half = max(1, round(seconds / 2))
        with RunningService(Path(tmp), {"CONSTELLATE_EMBED_BACKEND": backend}, models=models) as service:
            warm_s = service.wait_warm()
            runs = drive_search(wrk, service.port, filtered, unfiltered, half, connections)

    def rps(run: dict[str, Any]) -> float:
        return round(run["requests"] / (run["duration_us"] / 1e6), 1)

    def ms(run: dict[str, Any], q: int) -> float:
        return round(run[f"p{q}_us"] / 1000, 1)

    requests = runs[True]["requests"] + runs[False]["requests"]
    duration_s = (runs[True]["duration_us"] + runs[False]["duration_us"]) / 1e6
    out = {
        "n": n,
        "backend": backend,
        "tool": "wrk",
        "connections": connections,
        "rps": round(requests / duration_s, 1),
        "rps_filtered": rps(runs[True]),
        "rps_unfiltered": rps(runs[False]),
        "errors": runs[True]["errors"] + runs[False]["errors"],
        "p50_ms_filtered": ms(runs[True], 50),
        "p95_ms_filtered": ms(runs[True], 95),
        "p99_ms_filtered": ms(runs[True], 99),
        "p50_ms": ms(runs[False], 50),
        "p95_ms": ms(runs[False], 95),
        "p99_ms": ms(runs[False], 99),
        "query_embed_ms": round(embed_s / 50 * 1000, 2),
        "distinct_queries": len(queries),
        "waited_for_warm_up_s": round(warm_s, 1),
        "optimize_after_run_s": round(optimize_s, 1),
    }
    say(
        f"search {n} tickets, wrk with {connections} connections, {backend} query encoder: {out['rps']} req/s "
        f"(filtered {out['rps_filtered']}, unfiltered {out['rps_unfiltered']}), filtered p50/p95/p99 "
        f"{out['p50_ms_filtered']}/{out['p95_ms_filtered']}/{out['p99_ms_filtered']} ms, unfiltered "
        f"{out['p50_ms']}/{out['p95_ms']}/{out['p99_ms']} ms, query embedding {out['query_embed_ms']} ms, "
        f"{out['errors']} errors, after the run's re-indexing ({out['optimize_after_run_s']} s; targets: p99 <= 50 ms "
        "filtered, >= 200 req/s)"
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
            _, cold_s = timed(lambda: client.get("/map?limit=5000"))  # the one build per run and edit
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
                "map_first_ms": round(cold_s * 1000, 2),
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
        + f" (/map's first call, which builds it: {out['map_first_ms']} ms; /openapi.json {baseline} ms)"
    )
    return out
