"""File readers: good rows in, bad rows reported with line and reason; Banking77 loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from constellate.datasets import FieldMap, load_banking77, read_tickets
from constellate.exceptions import InputError
from constellate.tickets import text_id


def _write(path: Path, lines: list[str | bytes]) -> Path:
    data = b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n"
    path.write_bytes(data)
    return path


def test_jsonl_good_rows_become_tickets_with_metadata(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.jsonl",
        [
            json.dumps(
                {"id": "a", "text": "  card declined  ", "created_at": "2026-03-01T10:00:00+02:00", "tier": 1}
            ),
            json.dumps({"id": 7, "text": "refund please", "metadata": {"lang": "en"}}),
            json.dumps({"text": "no id here"}),
        ],
    )
    report = read_tickets(path)
    assert report.errors == []
    a, seven, anon = report.tickets
    assert (a.id, a.text, a.created_at, a.metadata) == (
        "a",
        "card declined",
        "2026-03-01T08:00:00Z",
        {"tier": 1},
    )
    assert seven.id == "7" and seven.metadata == {"lang": "en"}
    assert anon.id == text_id("no id here")


def test_jsonl_bad_rows_are_named_by_line_and_reason(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.jsonl",
        [
            json.dumps({"id": "1", "text": "fine"}),
            "{not json",
            json.dumps({"id": "2", "text": "   "}),
            json.dumps({"id": "3", "body": "wrong field"}),
            json.dumps({"id": "4", "text": 42}),
            json.dumps({"id": "5", "text": "x" * 101}),
            json.dumps(["a", "list"]),
            b'{"id": "6", "text": "bad \xff utf8"}',
            json.dumps({"id": "7", "text": "nul \u0000 inside"}),
            json.dumps({"id": {"x": 1}, "text": "id is an object"}),
            json.dumps({"id": "8", "text": "bad time", "created_at": "yesterday"}),
            json.dumps({"id": "9", "text": "also fine"}),
        ],
    )
    report = read_tickets(path, max_text_chars=100)
    assert [t.id for t in report.tickets] == ["1", "9"]
    reasons = {e.line: e.reason for e in report.errors}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "empty text"
    assert reasons[4] == "missing text field 'text'"
    assert "must be a string" in reasons[5]
    assert "limit is 100" in reasons[6]
    assert "JSON object" in reasons[7]
    assert "UTF-8" in reasons[8]
    assert "NUL" in reasons[9]
    assert "id field" in reasons[10]
    assert "ISO 8601" in reasons[11]
    assert report.rows == 12


def test_duplicate_ids_collapse_to_the_last(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.jsonl",
        [json.dumps({"id": "x", "text": "first"}), json.dumps({"id": "x", "text": "second"})],
    )
    report = read_tickets(path)
    assert [(t.id, t.text) for t in report.tickets] == [("x", "second")]
    assert report.duplicates == 1


def test_custom_field_names(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [json.dumps({"key": "k1", "body": "hello", "when": 0})])
    report = read_tickets(path, fields=FieldMap(text="body", id="key", created_at="when"))
    assert report.tickets[0].id == "k1"
    assert report.tickets[0].created_at == "1970-01-01T00:00:00Z"


def test_csv_with_quotes_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"id,text,channel\n"
        b'1,"card, declined ""again""",email\n'
        b"2,,chat\n"
        b'3,"multi\nline text",phone\n'
        b"4,too,many,fields\n"
        b"5,has \x00 nul,chat\n"
        b"6,ok,web\n"
    )
    report = read_tickets(path)
    assert [t.id for t in report.tickets] == ["1", "3", "6"]
    assert report.tickets[0].text == 'card, declined "again"'
    assert report.tickets[0].metadata == {"channel": "email"}
    assert report.tickets[1].text == "multi\nline text"
    reasons = {e.line: e.reason for e in report.errors}
    assert reasons == {
        3: "empty text",
        6: "row has more than the header's 3 fields",
        7: "text contains a NUL byte",
    }


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_tickets(tmp_path / "missing.jsonl")
    odd = tmp_path / "t.xml"
    odd.write_text("<x/>")
    with pytest.raises(InputError, match="--format"):
        read_tickets(odd)


def test_banking77_has_13083_texts_and_77_intents() -> None:
    items = load_banking77()
    assert len(items) == 13083
    assert len({i.label for i in items}) == 77
    assert all(i.text for i in items)
