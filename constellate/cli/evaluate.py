"""``constellate evaluate`` and ``constellate status``."""

from __future__ import annotations

from pathlib import Path

import click

from constellate.cli.base import (
    _echo_json,
    _naming,
    algorithm_option,
    data_dir_option,
    main,
)
from constellate.config import get_settings
from constellate.datasets import FieldMap, read_tickets
from constellate.exceptions import ConstellateError


@main.command()
@click.option("--dataset", type=click.Choice(["banking77", "clinc", "hwu", "stackoverflow", "mcid"]))
@click.option("--input", "input_path", type=click.Path(path_type=Path), help="A JSONL/CSV file with labels.")
@click.option("--label-field", default=None, help="Gold label field of --input.")
@click.option("--text-field", default="text", show_default=True)
@click.option(
    "--parent-field", default=None, help="A coarser gold label field of --input (scores the topics)."
)
@click.option(
    "--parent-from-prefix",
    "parent_sep",
    default=None,
    help="Derive the coarser gold label from the label's prefix before SEP (HWU64: _ gives the scenario).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@algorithm_option
def evaluate(
    dataset: str | None,
    input_path: Path | None,
    label_field: str | None,
    text_field: str,
    parent_field: str | None,
    parent_sep: str | None,
    as_json: bool,
    algorithm: str | None,
) -> None:
    """Run the pipeline on a labelled dataset in a temporary store and score it against the labels
    (the cluster level), and against a coarser gold level when one is given (the topic level)."""
    from constellate.datasets import LabelledText, load_labelled
    from constellate.evaluate import evaluate as run_evaluate

    if (dataset is None) == (input_path is None):
        raise click.UsageError("give exactly one of --dataset or --input")
    if parent_field and parent_sep:
        raise click.UsageError("give at most one of --parent-field or --parent-from-prefix")
    if parent_field and dataset:
        raise click.UsageError(
            "--parent-field names a field of --input (use --parent-from-prefix with --dataset)"
        )
    if parent_sep == "":
        raise click.UsageError("--parent-from-prefix needs a non-empty separator")
    settings = get_settings(algorithm=algorithm)
    try:
        if dataset:
            items = load_labelled(dataset)
        else:
            if not label_field:
                raise click.UsageError("--input needs --label-field")
            report = read_tickets(input_path, None, FieldMap(text=text_field), settings.max_text_chars)
            items = [
                LabelledText(
                    t.text,
                    str(t.metadata[label_field]),
                    None if not parent_field else str(t.metadata.get(parent_field) or "") or None,
                )
                for t in report.tickets
                if t.metadata.get(label_field) not in (None, "")
            ]
            if parent_field and any(item.parent is None for item in items):
                missing = sum(item.parent is None for item in items)
                raise click.ClickException(f"{missing} labelled rows have no {parent_field!r}")
            if len(items) < len(report.tickets) or report.errors:
                click.echo(
                    f"skipped {len(report.errors)} bad rows and {len(report.tickets) - len(items)} "
                    f"rows without {label_field!r}",
                    err=True,
                )
            if not items:
                raise click.ClickException("no labelled rows to evaluate")
        if parent_sep:
            unsplit = sum(parent_sep not in item.label for item in items)
            if unsplit == len(items):
                raise click.ClickException(
                    f"no label contains {parent_sep!r}: nothing to derive a parent from"
                )
            items = [LabelledText(i.text, i.label, i.label.split(parent_sep, 1)[0]) for i in items]
        embedder, namer = _naming(settings)
        result = run_evaluate(items, settings, embedder, namer)
    except ConstellateError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        _echo_json(result)
        return
    width = max(map(len, result))
    for key, value in result.items():
        click.echo(f"{key:>{width}}: {value}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@data_dir_option
def status(as_json: bool, data_dir: Path | None) -> None:
    """Show how many tickets, clusters and outliers the store holds, and the last run."""
    from constellate.status import store_status
    from constellate.store import open_store

    settings = get_settings(data_dir=data_dir)
    try:
        with open_store(settings) as store:
            info = store_status(store)
    except ConstellateError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        _echo_json(info)
        return
    click.echo(f"tickets:  {info['tickets']}")
    click.echo(f"clusters: {info['clusters']}")
    click.echo(f"outliers: {info['outliers']}")
    click.echo(f"current run: {info['current_run'] or 'none'}")
    last = info["last_run"]
    click.echo("last run: " + (f"{last.get('run_id')} ({last.get('status')})" if last else "none"))
