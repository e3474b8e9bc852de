"""The ``constellate`` command: the composition root that wires settings, store and embedder."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from constellate.config import Settings, get_settings
from constellate.datasets import FieldMap, ReadReport, read_tickets
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


host_option = click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
port_option = click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))


@main.command()
@host_option
@port_option
@data_dir_option
def up(host: str, port: int, data_dir: Path | None) -> None:
    """Run everything in one process: embedded Valkey (unless CONSTELLATE_REDIS_URL), the store, the
    API (waitress), the ingestion consumer and a Celery worker with beat. Ctrl-C/SIGTERM stops it."""
    import threading

    import redis
    from celery.beat import EmbeddedService
    from celery.worker import WorkController
    from celery.worker import state as worker_state
    from waitress import create_server

    import ingestion
    from api import create_app
    from constellate import jsonlog
    from constellate.embedded_redis import redis_url, stop_embedded
    from constellate.warmup import warm_up_in_background
    from worker import make_celery

    jsonlog.configure()
    settings = get_settings(data_dir=data_dir)
    url = redis_url(settings)
    embedder, namer = _naming(settings)
    store = _open_when_free(settings)
    store.ensure_collections(embedder.dim)
    stop = threading.Event()

    consumer = ingestion.make_consumer(settings, redis.Redis.from_url(url), store, embedder)
    consumer_thread = ingestion.run(consumer, stop)

    warm_up_in_background(settings)  # the first scheduled run finds the clustering kernels compiled
    celery_app = make_celery(settings, url, store=store, namer=namer)
    celery_app.finalize()
    # the worker and beat below use this app; the default too, not only the current one: the current
    # app is per thread, and a worker thread that fell back to the default app (no result backend)
    # never stored its tasks' results, so a `constellate recluster` handed to `up` never got its answer
    celery_app.set_current()
    celery_app.set_default()
    worker = WorkController(
        app=celery_app, pool="solo", concurrency=1, without_mingle=True, without_gossip=True, loglevel="INFO"
    )
    worker_thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
    worker_thread.start()
    beat = EmbeddedService(celery_app, thread=True)
    beat.start()

    app = create_app(settings, store=store, embedder=embedder, redis_url=url)
    server = create_server(app, host=host, port=port, threads=8)
    _stop_on_signals(stop, server.close)
    click.echo(f"constellate is up: http://{host}:{port}  (Ctrl-C to stop)", err=True)
    try:
        server.run()
    except OSError:
        if not stop.is_set():
            raise
    finally:
        click.echo("stopping …", err=True)
        stop.set()
        beat.stop()
        worker_state.should_terminate = 0
        consumer_thread.join(timeout=30)
        worker_thread.join(timeout=30)
        store.close()
        stop_embedded()
        click.echo("stopped", err=True)


@main.command()
@host_option
@port_option
def api(host: str, port: int) -> None:
    """Serve the API alone (service mode: CONSTELLATE_QDRANT_URL and CONSTELLATE_REDIS_URL set)."""
    from waitress import serve

    from api import create_app
    from constellate import jsonlog

    jsonlog.configure()
    serve(create_app(get_settings()), host=host, port=port, threads=8)


@main.command(name="ingestion")
def ingestion_command() -> None:
    """Run the ingestion consumer alone (service mode). SIGTERM stops it after the current batch."""
    import threading

    import redis

    import ingestion
    from constellate.embedded_redis import redis_url
    from constellate.embedding import embedder_for
    from constellate.store import open_store

    settings = get_settings()
    url = redis_url(settings, start=False)
    embedder = embedder_for(settings)
    stop = threading.Event()
    _stop_on_signals(stop)
    with open_store(settings) as store:
        consumer = ingestion.make_consumer(settings, redis.Redis.from_url(url), store, embedder)
        click.echo(f"ingestion consumer {consumer.name} reading {url}", err=True)
        consumer.run(stop)


@main.command()
@click.option("--quick", "mode", flag_value="quick", default=True, help="Under 10 minutes (default).")
@click.option(
    "--full", "mode", flag_value="full", help="Recluster, search and page at 1M tickets; over an hour."
)
@click.option("--smoke", "mode", flag_value="smoke", help="Tiny sizes: checks the bench runs (CI).")
@click.option(
    "--scale",
    "mode",
    flag_value="scale",
    help="The run at 100k, 300k, 1M and 3M tickets: first, unchanged and new-10 % runs (long).",
)
@click.option("--scale-max", type=int, default=None, help="With --scale: stop the series at this N.")
@click.option(
    "--scale-sizes",
    default=None,
    help="With --scale: these N instead (comma-separated, e.g. 100000,1000000).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write results here."
)
def bench(mode: str, scale_max: int | None, scale_sizes: str | None, json_path: Path | None) -> None:
    """Benchmarks with ratios to baselines measured in the same run (see the bench package)."""
    import tempfile

    if mode == "scale":
        from bench.scale import SCALE_SIZES, bench_scale

        try:
            chosen = [int(n) for n in scale_sizes.split(",")] if scale_sizes else list(SCALE_SIZES)
        except ValueError as exc:
            raise click.BadParameter(
                "a comma-separated list of ticket counts", param_hint="--scale-sizes"
            ) from exc
        sizes = [n for n in chosen if scale_max is None or n <= scale_max] or [scale_max or SCALE_SIZES[0]]
        results = {"mode": "scale", "scale": bench_scale(sizes, lambda line: click.echo(line))}
        if json_path is not None:
            json_path.write_text(json.dumps(results, indent=2))
            click.echo(f"wrote {json_path}")
        return
    from bench.run import run_bench

    with tempfile.TemporaryDirectory(prefix="constellate-bench-") as tmp:
        results = run_bench(mode, lambda line: click.echo(line), Path(tmp) / "models")
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2))
        click.echo(f"wrote {json_path}")


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


if __name__ == "__main__":
    main()
