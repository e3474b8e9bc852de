"""The long-running commands: ``up`` (everything in one process), ``api`` and ``ingestion``."""

from __future__ import annotations

from pathlib import Path

import click

from constellate.cli.base import (
    _naming,
    _open_when_free,
    _stop_on_signals,
    data_dir_option,
    main,
)
from constellate.config import get_settings

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
    server = create_server(app, host=host, port=port, threads=settings.api_threads)
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
    from constellate.embedding import embedder_for

    jsonlog.configure()
    settings = get_settings()
    # the encoder is loaded and its query models compiled before the first request, as in `up`:
    # made on first use, the first searches waited seconds for the load and ~0.3 s per query model
    app = create_app(settings, embedder=embedder_for(settings))
    serve(app, host=host, port=port, threads=settings.api_threads)


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
