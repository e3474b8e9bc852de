"""``constellate ingest``: a file of tickets into the store or the stream, bad rows reported."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from constellate.cli.base import (
    _MAX_LISTED_ERRORS,
    _echo_json,
    data_dir_option,
    main,
)
from constellate.config import get_settings
from constellate.datasets import FieldMap, ReadReport, read_tickets
from constellate.exceptions import ConstellateError


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None, help="Default: by suffix."
)
@click.option("--text-field", default="text", show_default=True)
@click.option("--id-field", default="id", show_default=True)
@click.option("--created-at-field", default="created_at", show_default=True)
@click.option("--strict", is_flag=True, help="Any bad row fails the command before anything is written.")
@click.option("--queue", is_flag=True, help="Push to the ingestion stream instead of writing directly.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@data_dir_option
def ingest(
    path: Path,
    fmt: str | None,
    text_field: str,
    id_field: str,
    created_at_field: str,
    strict: bool,
    queue: bool,
    as_json: bool,
    data_dir: Path | None,
) -> None:
    """Embed the tickets in PATH (JSONL or CSV) and store them. Bad rows are reported and skipped.

    Exit status: 0 when every good row was stored (bad rows, if any, are listed), 1 when --strict
    refused the file or no row could be stored, 2 for usage errors.
    """
    settings = get_settings(data_dir=data_dir)
    try:
        report = read_tickets(
            path, fmt, FieldMap(text_field, id_field, created_at_field), settings.max_text_chars
        )
    except ConstellateError as exc:
        raise click.ClickException(str(exc)) from exc
    if strict and report.errors:
        _print_ingest_summary(report, stored=0, as_json=as_json, refused=True)
        sys.exit(1)

    stored = 0
    if report.tickets and queue:
        import redis

        from constellate.embedded_redis import redis_url
        from constellate.stream import publish

        try:
            client = redis.Redis.from_url(redis_url(settings, start=False))
            for start in range(0, len(report.tickets), 1000):
                stored += len(publish(client, report.tickets[start : start + 1000]))
        except (RuntimeError, redis.RedisError) as exc:
            raise click.ClickException(f"cannot reach the ingestion stream: {exc}") from exc
    elif report.tickets:
        from tqdm import tqdm

        from constellate.assign import CentroidAssigner
        from constellate.embedding import embedder_for
        from constellate.ingest import ingest_tickets
        from constellate.store import open_store

        embedder = embedder_for(settings)
        with (
            open_store(settings) as store,
            tqdm(
                total=len(report.tickets), unit="ticket", desc="embedding", disable=as_json, file=sys.stderr
            ) as bar,
        ):
            stored = ingest_tickets(
                report.tickets,
                store,
                embedder,
                chunk_size=settings.upsert_batch_size,
                labeller=CentroidAssigner(store),  # labelled at once if clusters exist
                progress=bar.update,
            )
            store.optimize()
    _print_ingest_summary(report, stored=stored, as_json=as_json, refused=False)
    if stored == 0 and report.errors:
        sys.exit(1)


def _print_ingest_summary(report: ReadReport, stored: int, as_json: bool, refused: bool) -> None:
    skipped = [{"line": e.line, "reason": e.reason} for e in report.errors]
    if as_json:
        _echo_json(
            {
                "read": report.rows,
                "stored": stored,
                "skipped": len(skipped),
                "duplicates": report.duplicates,
                "refused": refused,
                "errors": skipped,
            }
        )
        return
    out = click.echo
    if refused:
        out(f"refused (--strict): {len(skipped)} bad row(s); nothing was written", err=True)
    out(
        f"read {report.rows} rows, stored {stored}, skipped {len(skipped)}"
        + (f", {report.duplicates} duplicate id(s) collapsed" if report.duplicates else "")
    )
    for err in report.errors[:_MAX_LISTED_ERRORS]:
        out(f"  line {err.line}: {err.reason}", err=True)
    if len(report.errors) > _MAX_LISTED_ERRORS:
        counts = Counter(e.reason.split(":")[0] for e in report.errors)
        more = len(report.errors) - _MAX_LISTED_ERRORS
        out(f"  … and {more} more; by reason: {dict(counts)}", err=True)
