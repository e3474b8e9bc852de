"""The benchmark at tiny sizes, so it cannot rot: checks the output shape, never the times."""

from __future__ import annotations

import pytest

from bench.run import run_bench

pytestmark = pytest.mark.slow


def test_bench_smoke_prints_every_section_and_the_json_shape(tmp_path) -> None:
    lines: list[str] = []
    results = run_bench("smoke", lines.append, tmp_path / "models")
    assert {"ingest", "ingest_api", "redis", "encoder", "recluster", "search", "assign"} <= set(results)
    assert set(results["ingest"]) >= {"per_s", "ratio_vs_encode"} and results["ingest"]["per_s"] > 0
    api = results["ingest_api"]
    assert api["n"] == 300 and api["backend"] == "openvino" and api["per_s"] > 0
    assert api["ratio_vs_torch"] > 0 and api["ratio_vs_onnx"] > 0 and api["ratio_vs_openvino"] > 0
    assert results["redis"]["n"] == 300 and results["redis"]["used_memory_mb_after"] > 0
    assert results["redis"]["stream_len_after"] == 0  # every entry acknowledged, so trimmed
    assert results["encoder"]["backend"] in ("onnx", "openvino")  # int8 weights are never chosen
    assert set(results["encoder"]) >= {"ratio_vs_torch", "cosine"} and results["encoder"]["cosine"] >= 0.999
    assert set(results["recluster"]["400"]) >= {"seconds", "peak_rss_mb"}
    search = results["search"]
    assert search["tool"] == "wrk" and search["connections"] == 8 and search["errors"] == 0
    assert search["rps"] > 0 and search["rps_filtered"] > 0 and search["rps_unfiltered"] > 0
    assert search["optimize_after_run_s"] >= 0  # measured after the run's re-indexing
    for key in ("p50_ms_filtered", "p95_ms_filtered", "p99_ms_filtered", "p50_ms", "p95_ms", "p99_ms"):
        assert search[key] > 0, key
    assert set(results["assign"]) == {"1000", "10000"}
    assert results["page"]["n"] == 400 and results["page"]["/map?limit=5000"]["bytes"] > 1000
    for prefix in (
        "ingest",
        "encoder chosen",
        "ingest via API (300",
        "redis after 300",
        "recluster 400",
        "search",
        "page at 400",
        "assign vs 1000",
    ):
        assert any(line.startswith(prefix) for line in lines), prefix
