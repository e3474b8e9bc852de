"""The benchmark at tiny sizes, so it cannot rot: checks the output shape, never the times."""

from __future__ import annotations

import pytest

from constellate.bench import run_bench

pytestmark = pytest.mark.slow


def test_bench_smoke_prints_every_section_and_the_json_shape(tmp_path) -> None:
    lines: list[str] = []
    results = run_bench("smoke", lines.append, tmp_path / "models")
    assert {"ingest", "encoder", "recluster", "search", "assign"} <= set(results)
    assert set(results["ingest"]) >= {"per_s", "ratio_vs_encode", "stream"} and results["ingest"]["per_s"] > 0
    assert results["ingest"]["stream"]["per_s"] > 0
    assert results["encoder"]["backend"] in ("onnx", "onnx-int8")
    assert set(results["encoder"]) >= {"ratio_vs_torch", "cosine"} and results["encoder"]["cosine"] > 0.9
    assert set(results["recluster"]["400"]) >= {"seconds", "peak_rss_mb"}
    assert set(results["search"]) >= {"rps", "p99_ms_filtered", "p99_ms"} and results["search"]["errors"] == 0
    assert set(results["assign"]) == {"1000", "10000"}
    assert results["page"]["n"] == 400 and results["page"]["/map?limit=5000"]["bytes"] > 1000
    for prefix in ("ingest", "encoder chosen", "recluster 400", "search", "page at 400", "assign vs 1000"):
        assert any(line.startswith(prefix) for line in lines), prefix
