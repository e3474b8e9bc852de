"""The ``constellate`` group, its shared options and helpers (each command group is a module beside it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from constellate.config import Settings
from constellate.exceptions import ConstellateError

_MAX_LISTED_ERRORS = 20


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory of the embedded store (default: $CONSTELLATE_DATA_DIR or ./.constellate).",
)


class _Group(click.Group):
    """Any user-actionable error (bad settings included) becomes a message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConstellateError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
def main() -> None:
    """constellate: continuous clustering of support tickets."""


algorithm_option = click.option(
    "--algorithm",
    type=click.Choice(["hdbscan", "kmeans", "minibatch_kmeans", "dbscan", "evoc"]),
    default=None,
    help="Clusterer (default: $CONSTELLATE_ALGORITHM or evoc).",
)


def _naming(settings: Settings):
    from constellate.embedding import embedder_for
    from constellate.naming import namer_for

    embedder = embedder_for(settings)
    return embedder, namer_for(embedder, settings)


def _open_when_free(settings: Settings, wait_seconds: float = 900) -> Any:
    """Open the store; while another process (a `constellate recluster` on the embedded store) has
    it, wait for it instead of failing."""
    import time

    from constellate.exceptions import StoreBusy
    from constellate.store import open_store

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return open_store(settings)
        except StoreBusy:
            if time.monotonic() > deadline:
                raise
            click.echo("the store is open in another constellate process; waiting for it", err=True)
            time.sleep(2)


def _stop_on_signals(stop: Any, also: Any = None) -> None:
    import signal

    def handler(_signum: int, _frame: object) -> None:
        stop.set()
        if also is not None:
            also()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
