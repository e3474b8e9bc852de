"""Scoring helpers of `constellate evaluate` and its argument checks (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from constellate.cli import main
from constellate.datasets import LabelledText
from constellate.evaluate import topic_metrics


def test_topic_metrics_score_each_ticket_by_its_clusters_topic() -> None:
    items = [LabelledText("t", f"{p}_{c}", p) for p, c in [("a", 1), ("a", 2), ("b", 3), ("b", 4)]]
    catalogue = [{"cluster_id": c, "topic_id": 100 + (c > 2)} for c in (1, 2, 3, 4)]
    perfect = topic_metrics(items, np.array([1, 2, 3, 4]), catalogue)
    assert perfect == {"gold_parents": 2, "topic_v_measure": 1.0, "topic_ari": 1.0}
    crossed = topic_metrics(items, np.array([1, 3, 2, 4]), catalogue)  # each topic holds one of each
    assert crossed["topic_v_measure"] == 0.0 and crossed["topic_ari"] < 0
    unparented = topic_metrics([LabelledText("t", "x")], np.array([1]), catalogue)
    assert unparented == {"gold_parents": None, "topic_v_measure": None, "topic_ari": None}


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_parent_options_are_checked_before_any_work(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text(json.dumps({"text": "hi", "intent": "a_b"}) + "\n")
    code, out = _run("evaluate", "--dataset", "hwu", "--parent-field", "scenario")
    assert code == 2 and "--parent-from-prefix" in out
    both = ("--parent-field", "s", "--parent-from-prefix", "_")
    code, out = _run("evaluate", "--input", str(path), "--label-field", "intent", *both)
    assert code == 2 and "at most one" in out
    code, out = _run(
        "evaluate", "--input", str(path), "--label-field", "intent", "--parent-field", "scenario"
    )
    assert code == 1 and "1 labelled rows have no 'scenario'" in out
    code, out = _run("evaluate", "--input", str(path), "--label-field", "intent", "--parent-from-prefix", "/")
    assert code == 1 and "no label contains '/'" in out
