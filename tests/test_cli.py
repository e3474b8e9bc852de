"""The `constellate` command end to end on the embedded store with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from constellate.cli import main
from constellate.datasets import load_banking77


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _status(data_dir: Path) -> dict:
    code, out, _ = _run("status", "--json", "--data-dir", str(data_dir))
    assert code == 0
    return json.loads(out)


def test_status_of_an_empty_data_dir(tmp_path: Path) -> None:
    assert _status(tmp_path / "d") == {
        "tickets": 0,
        "clusters": 0,
        "outliers": 0,
        "current_run": None,
        "last_run": None,
    }


@pytest.mark.slow
def test_ingesting_5000_lines_twice_leaves_5000_tickets(tmp_path: Path, real_embedder) -> None:
    texts = [item.text for item in load_banking77(["train"])[:5000]]
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(json.dumps({"id": f"T-{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    data_dir = tmp_path / "d"
    for _ in range(2):
        code, out, _ = _run("ingest", str(path), "--data-dir", str(data_dir), "--json")
        assert code == 0
        summary = json.loads(out)
        assert (summary["read"], summary["stored"], summary["skipped"]) == (5000, 5000, 0)
    assert _status(data_dir)["tickets"] == 5000


@pytest.mark.slow
def test_bad_lines_are_named_and_good_ones_stored(tmp_path: Path, real_embedder) -> None:
    lines = [json.dumps({"id": f"ok-{i}", "text": f"I was charged twice for order {i}"}) for i in range(6)]
    lines.insert(2, "{broken json")
    lines.insert(4, json.dumps({"id": "e", "text": ""}))
    lines.insert(7, json.dumps({"id": "n", "subject": "no text field"}))
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data_dir = tmp_path / "d"
    code, out, err = _run("ingest", str(path), "--data-dir", str(data_dir))
    assert code == 0
    assert "read 9 rows, stored 6, skipped 3" in out
    assert "line 3: invalid JSON" in err
    assert "line 5: empty text" in err
    assert "line 8: missing text field 'text'" in err
    assert _status(data_dir)["tickets"] == 6


def test_strict_refuses_the_whole_file_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "fine"}) + "\nnot json\n")
    data_dir = tmp_path / "d"
    code, out, _ = _run("ingest", str(path), "--strict", "--json", "--data-dir", str(data_dir))
    assert code == 1
    summary = json.loads(out)
    assert summary["refused"] is True and summary["stored"] == 0
    assert summary["errors"] == [{"line": 2, "reason": "invalid JSON: Expecting value (column 1)"}]
    assert _status(data_dir)["tickets"] == 0


def test_a_file_with_only_bad_rows_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("nope\n")
    code, _, err = _run("ingest", str(path), "--data-dir", str(tmp_path / "d"))
    assert code == 1
    assert "line 1: invalid JSON" in err


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1
    assert "no such file" in result.stderr
