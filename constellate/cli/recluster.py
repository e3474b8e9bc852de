"""``constellate recluster``: one run here, or through the service that holds the store; the tree printed."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from constellate.cli.base import (
    _echo_json,
    _naming,
    algorithm_option,
    data_dir_option,
    main,
)
from constellate.config import Settings, get_settings
from constellate.exceptions import ConstellateError


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
@click.option("--top", default=15, show_default=True, help="Clusters to list.")
@click.option(
    "--full",
    is_flag=True,
    help="A full run (refit, relabel every ticket) even if an incremental one would do.",
)
@algorithm_option
@data_dir_option
def recluster(as_json: bool, top: int, full: bool, algorithm: str | None, data_dir: Path | None) -> None:
    """Recluster now and print the run summary (incremental or full: see CONSTELLATE_RECLUSTER_MODE).

    Runs in this process under the same run lock as the workers (a run already going makes this
    exit 1). When the embedded store is open in `constellate up` or a worker, the run is handed to
    that service through its broker and this command waits for it.
    """
    from constellate.exceptions import StoreBusy
    from constellate.optimizer import BackgroundOptimizer
    from constellate.pipeline import recluster as run_recluster
    from constellate.store import open_store

    settings = get_settings(data_dir=data_dir, algorithm=algorithm)

    def progress(message: str) -> None:
        click.echo(f"… {message}", err=True)

    try:
        store = open_store(settings)
    except StoreBusy:
        run = _recluster_via_service(settings, progress, full)
        _print_run(run, [], as_json, top)
        if run.get("status") not in ("succeeded", "dispatched", "skipped"):
            sys.exit(1)
        return
    _, namer = _naming(settings)
    notifier = None
    if settings.alert_webhook_url:
        from constellate.alerts import WebhookNotifier

        notifier = WebhookNotifier(settings.alert_webhook_url)
    try:
        with store:
            lease = _run_lock(settings)
            if lease is not None and not lease.acquire():
                raise click.ClickException(
                    f"run {lease.holder() or '?'} holds the recluster lock; try again when it has finished"
                )
            if lease is not None:
                lease.keep_alive()
            optimizer = BackgroundOptimizer(store)
            try:
                run = run_recluster(
                    store,
                    settings,
                    namer=namer,
                    progress=progress,
                    notifier=notifier,
                    lease=lease,
                    optimizer=optimizer,
                    full=full,
                )
            finally:
                if lease is not None:
                    lease.release()
            clusters = store.list_clusters(run["run_id"], level=None) if run["status"] == "succeeded" else []
            progress("optimize: re-indexing what the run changed (readers already see the new labels)")
            optimizer.wait()
    except ConstellateError as exc:
        raise click.ClickException(str(exc)) from exc
    if notifier is not None:
        notifier.wait(30)  # this process exits next: let the webhook deliveries finish
    _print_run(run, [r.payload for r in clusters], as_json, top)


def _run_lock(settings: Settings) -> Any:
    """The workers' run lock on the service's Redis; None when no Redis serves this data dir (then the
    embedded store's own directory lock keeps every other process out)."""
    import redis

    from constellate.embedded_redis import redis_url
    from constellate.run_lock import RunLock

    try:
        url = redis_url(settings, start=False)
    except RuntimeError:
        return None
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise click.ClickException(f"cannot reach Redis for the run lock at {url}: {exc}") from exc
    return RunLock(client, timeout=settings.recluster_lock_seconds)


def _recluster_via_service(settings: Settings, progress: Any, full: bool = False) -> dict[str, Any]:
    """Hand the run to the service that has the embedded store open, through its broker, and wait."""
    from constellate.embedded_redis import redis_url
    from constellate.service_run import recluster_via_service

    try:
        url = redis_url(settings, start=False)
    except RuntimeError as exc:
        raise click.ClickException(
            f"the store under {settings.data_dir} is open in another process and no broker answers for it"
        ) from exc
    progress("the store is open in a running service: asking its worker to recluster")
    try:
        return recluster_via_service(url, settings, say=progress, full=full)
    except Exception as exc:
        raise click.ClickException(f"the service's recluster failed: {exc}") from exc


def _print_run(run: dict[str, Any], clusters: list[dict[str, Any]], as_json: bool, top: int) -> None:
    if as_json:
        _echo_json(run)
        return
    if run["status"] != "succeeded":
        click.echo(
            f"run {run.get('run_id', '?')}: {run['status']} ({run.get('reason') or run.get('error', '')})"
        )
        return
    counts = Counter(e["event"] for e in run.get("events", []) if e.get("level", "cluster") == "cluster")
    click.echo(
        f"run {run['run_id']} ({run.get('mode', 'full')}): {run['n_points']} tickets -> "
        f"{run['n_clusters']} clusters in {run.get('n_topics', 0)} topics, "
        f"{run['outlier_fraction']:.1%} outliers, {run.get('n_read', run['n_points'])} read, "
        f"{run['written']} labels written, {run['seconds']['total']:.1f} s"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else "")
    )
    print_tree(clusters, top)


def print_tree(entries: list[dict[str, Any]], top: int) -> None:
    """The catalogue as a tree: the largest topics, each with its largest clusters (``top`` lines of
    clusters in all); a catalogue without topics prints as a flat list."""
    topics = sorted((e for e in entries if e.get("level") == "topic"), key=lambda e: -int(e["size"]))
    clusters = {int(e["cluster_id"]): e for e in entries if e.get("level", "cluster") == "cluster"}
    if not clusters:
        return
    click.echo(f"{'id':>5}  {'size':>6}  name")
    if not topics:
        for p in sorted(clusters.values(), key=lambda c: -int(c["size"]))[:top]:
            click.echo(f"{p['cluster_id']:>5}  {p['size']:>6}  {p['name']}")
        return
    shown = 0
    for t in topics:
        if shown >= top:
            click.echo(f"  … {len(topics) - topics.index(t)} more topics")
            break
        click.echo(f"{t['cluster_id']:>5}  {t['size']:>6}  {t['name']}")
        children = sorted(
            (clusters[c] for c in t.get("children", []) if c in clusters), key=lambda c: -int(c["size"])
        )
        for p in children[: max(1, min(5, top - shown))]:
            click.echo(f"{p['cluster_id']:>5}  {p['size']:>6}    └ {p['name']}")
            shown += 1
        if len(children) > 5:
            click.echo(f"{'':>15}    └ … {len(children) - 5} more clusters")
