"""Property tests of the file readers: any bytes give a report, never a crash, and no row is lost."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constellate.datasets import read_tickets

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

junk_lines = st.one_of(
    st.binary(max_size=200).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.sampled_from(
        [
            b"\xff\xfe\x00 not utf-8",
            b'{"text": "nul \\u0000 byte"}',
            b'{"text": "   "}',
            b'{"text": ""}',
            b'{"text": 42}',
            b'{"id": [1], "text": "list id"}',
            b"[1, 2, 3]",
            b"[" * 5000 + b"]" * 5000,
            b'{"text": "' + b"x" * 2000 + b'"}',
            b'{"text": "ok", "created_at": "yesterday-ish"}',
            b'{"text": "\\ud800 lone surrogate"}',
        ]
    ),
)
good_texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=80
).filter(lambda t: t.strip())


def _read(raw: bytes, suffix: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"tickets{suffix}"
        path.write_bytes(raw)
        return read_tickets(path, max_text_chars=1000)


def _accounted(report) -> None:
    assert report.rows == len(report.tickets) + len(report.errors) + report.duplicates
    assert all(e.line >= 1 and e.reason for e in report.errors)


@FUZZ
@given(st.binary(max_size=4000))
def test_any_bytes_as_jsonl_or_csv_give_a_report(raw: bytes) -> None:
    for suffix in (".jsonl", ".csv", ".tsv"):
        _accounted(_read(raw, suffix))


@FUZZ
@given(
    st.lists(
        st.one_of(good_texts.map(lambda t: ("good", t)), junk_lines.map(lambda b: ("junk", b))), max_size=30
    )
)
def test_jsonl_keeps_every_good_row_and_names_every_bad_one(rows) -> None:
    lines, wanted = [], {}
    for number, (kind, value) in enumerate(rows, start=1):
        if kind == "good":
            ticket_id = f"t{number}"
            lines.append(json.dumps({"id": ticket_id, "text": value}).encode())
            wanted[ticket_id] = value.strip()
        else:
            lines.append(value)
    report = _read(b"\n".join(lines), ".jsonl")
    _accounted(report)
    got = {t.id: t.text for t in report.tickets}
    assert {k: got.get(k) for k in wanted} == wanted  # every good row stored, text intact


@FUZZ
@given(st.lists(st.tuples(st.text(max_size=20), good_texts), max_size=20))
def test_csv_round_trips_quoted_fields(rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "text", "team"])
    for number, (team, text) in enumerate(rows):
        writer.writerow([f"c{number}", text, team.replace("\x00", "")])
    report = _read(buffer.getvalue().encode("utf-8"), ".csv")
    _accounted(report)
    got = {t.id: t.text for t in report.tickets}
    assert got == {f"c{number}": text.strip() for number, (_team, text) in enumerate(rows)}
