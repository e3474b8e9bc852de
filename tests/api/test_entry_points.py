"""The API's own entry points (`constellate api`, gunicorn's `api.wsgi`) load and warm the query
encoder before they serve: made on first use, the first searches waited for the model's load and
for each query model's compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from constellate.cli import main


class WarmCounting:
    """An embedder stub that records its warm-up."""

    dim = 8

    def __init__(self) -> None:
        self.warmed = 0

    def warm_query(self) -> None:
        self.warmed += 1


def test_api_command_serves_an_app_whose_encoder_is_loaded_and_warm(monkeypatch, tmp_path: Path) -> None:
    made: list[WarmCounting] = []
    served: dict[str, Any] = {}

    def fake_embedder_for(settings: Any) -> WarmCounting:
        made.append(WarmCounting())
        return made[-1]

    def fake_serve(app: Any, **kw: Any) -> None:
        served["app"] = app
        served["warmed_when_served"] = made[-1].warmed if made else 0
        served.update(kw)

    monkeypatch.setattr("constellate.embedding.embedder_for", fake_embedder_for)
    monkeypatch.setattr("waitress.serve", fake_serve)
    monkeypatch.setattr("constellate.jsonlog.configure", lambda *a, **k: None)  # keep pytest's logging
    monkeypatch.setenv("CONSTELLATE_DATA_DIR", str(tmp_path / "d"))
    result = CliRunner().invoke(main, ["api", "--port", "8765"], catch_exceptions=False)
    assert result.exit_code == 0
    assert len(made) == 1
    assert served["warmed_when_served"] == 1  # warmed before waitress took a request
    assert served["app"].extensions["constellate"].embedder is made[0]
    assert served["port"] == 8765


def test_api_command_with_a_model_it_cannot_load_exits_with_a_message(monkeypatch, tmp_path: Path) -> None:
    served: list[Any] = []
    monkeypatch.setattr("waitress.serve", lambda app, **kw: served.append(app))
    monkeypatch.setattr("constellate.jsonlog.configure", lambda *a, **k: None)
    monkeypatch.setenv("CONSTELLATE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("CONSTELLATE_MODEL", str(tmp_path / "no-such-model"))
    result = CliRunner().invoke(main, ["api", "--port", "8765"])
    assert result.exit_code == 1
    assert "cannot load the embedding model" in result.output and "CONSTELLATE_MODEL" in result.output
    assert "Traceback" not in result.output
    assert served == []  # it never served


@pytest.mark.slow
def test_wsgi_app_holds_the_real_encoder_with_every_query_model_compiled(tmp_path: Path) -> None:
    """What a gunicorn worker imports, in a fresh process as a worker would: the encoder is made at
    import, not by the first request, and all of its query models are compiled."""
    probe = (
        "import json, api.wsgi as w\n"
        "e = w.app.extensions['constellate']._embedder\n"
        "print(json.dumps({'type': type(e).__name__, 'models': sorted(e._query_models),"
        " 'lengths': list(e.query_lengths)}))\n"
    )
    env = {
        **os.environ,
        "CONSTELLATE_DATA_DIR": str(tmp_path / "d"),
        "CONSTELLATE_EMBED_BACKEND": "openvino",
        "HF_HUB_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=600
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["type"] == "OpenVinoEmbedder"
    assert seen["models"] == sorted([*seen["lengths"], 0])  # every static length and the dynamic one
