"""The scale series: a run's time and memory as the history grows (``scripts/bench --scale``).

For each N, a store of real Banking77 vectors jittered to N tickets (one intent held out) is built;
then one long-lived worker process (model loaded, kernels warm) runs: a first run, a run on unchanged
data, and a run after 10 % more tickets of the held-out intent (a new topic) were ingested and
labelled at ingest. Each run reports its seconds per stage, the share of tickets it wrote, and the
process's peak RSS against its RSS just before the run.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import cached_vectors
from constellate.config import Settings

Say = Callable[[str], None]
SCALE_SIZES = (100_000, 300_000, 1_000_000, 3_000_000)
JITTER = 0.02
INDEX_MAX = 100_000  # above this the stores are not HNSW-indexed (a 1M build took over an hour here; the runs never search)


def proc_mb(path: str, field: str) -> float:
    """A kB field of a /proc file (``/proc/self/status``, ``/proc/meminfo``, ...) in MB; NaN where
    it cannot be read (not Linux)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _rss_mb(field: str = "VmRSS") -> float:
    return proc_mb("/proc/self/status", field)


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5), so a run's peak is its own."""
    with contextlib.suppress(OSError):  # not Linux, or not allowed: the peak then spans the process
        Path("/proc/self/clear_refs").write_text("5")


def jittered(base: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """Copies of ``base[rows]`` with Gaussian jitter, unit-norm (the scaled-up tickets)."""
    rng = np.random.default_rng(seed)
    out = base[rows] + rng.normal(scale=JITTER, size=(len(rows), base.shape[1])).astype(np.float32)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def build_store(data_dir: Path, n: int, base: np.ndarray, texts: Sequence[str], say: Say) -> float:
    """Fill an embedded store with ``n`` jittered tickets (indexed up to ``INDEX_MAX``); the seconds."""
    from constellate.store import edge_store
    from constellate.tickets import Ticket

    started = time.perf_counter()
    store = edge_store(Settings(data_dir=data_dir))
    try:
        store.ensure_collections(base.shape[1])
        chunk = 10_000
        for lo in range(0, n, chunk):
            rows = np.arange(lo, min(n, lo + chunk)) % len(base)
            vectors = jittered(base, rows, seed=lo)
            tickets = [Ticket(id=f"x{lo + i}", text=texts[r]) for i, r in enumerate(rows)]
            store.tickets.upsert(
                [_pid(t.id) for t in tickets],
                vectors,
                [
                    {"ticket_id": t.id, "text": t.text, "created_at": t.created_at, "metadata": {}}
                    for t in tickets
                ],
            )
        filled = time.perf_counter() - started
        if n <= INDEX_MAX:
            store.optimize()
    finally:
        store.close()
    say(
        f"scale   built {n} tickets in {filled:.0f} s + optimize {time.perf_counter() - started - filled:.0f} s"
    )
    return time.perf_counter() - started


def _pid(ticket_id: str) -> str:
    from constellate.tickets import point_id

    return point_id(ticket_id)


def _pss_mb() -> float:
    """This process's proportional set size: each resident page counted once (see :class:`MemoryPeak`)."""
    return proc_mb("/proc/self/smaps_rollup", "Pss")


def _whole(mb: float) -> int | None:
    """Megabytes as a whole number; None where the figure could not be read (not Linux)."""
    return None if mb != mb else round(mb)


class MemoryPeak:
    """The largest RssAnon and PSS seen while it runs (sampled every ``every`` seconds).

    RssAnon is the process's own memory, apart from the store's file pages. PSS counts every
    resident page once: qdrant-edge maps its vector file twice (the populated mapping it reads
    vectors through and a second one its exact search scans), so after the first exact search
    VmRSS/VmHWM count the same 1.5 GB of page cache twice at 1M (``python -m bench.double_map``).
    """

    def __init__(self, every: float = 0.25) -> None:
        import threading

        self.every = every
        self.anon, self.pss = 0.0, float("nan")  # PSS stays NaN where it cannot be read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _sample(self) -> None:
        self.anon = max(self.anon, _rss_mb("RssAnon"))
        pss = _pss_mb()
        if pss == pss:
            self.pss = pss if self.pss != self.pss else max(self.pss, pss)

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> MemoryPeak:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def run_series(data_dir: Path, n: int, new: np.ndarray, new_texts: Sequence[str], parts_check: bool) -> dict:
    """In this (fresh) process: warm up like a worker, then the first, unchanged and new10 runs."""
    from constellate.assign import CentroidAssigner
    from constellate.embedding import load_embedder
    from constellate.naming import KeyBERTNamer
    from constellate.pipeline import recluster
    from constellate.store import edge_store
    from constellate.tickets import Ticket
    from constellate.warmup import warm_up

    settings = Settings(data_dir=data_dir)
    namer = KeyBERTNamer(load_embedder())
    warm = warm_up()
    store = edge_store(settings)
    out: dict[str, Any] = {"n": n, "warm_up_s": round(warm, 1), "indexed": n <= INDEX_MAX}

    def one(label: str, full: bool = False) -> dict[str, Any]:
        idle, idle_anon, idle_pss = _rss_mb(), _rss_mb("RssAnon"), _pss_mb()
        _reset_peak()
        started = time.perf_counter()
        with MemoryPeak() as memory:
            run = recluster(store, settings, namer=namer, full=full)  # the optimiser is timed apart
        seconds = time.perf_counter() - started
        peak = _rss_mb("VmHWM")
        skipped = run["status"] == "skipped"  # nothing changed: nothing read, fitted or written
        if skipped:
            run = {**run, "n_read": 0, "written": 0, "seconds": {}, "n_clusters": None}
        result = {
            f"{label}_s": round(seconds, 1),
            f"{label}_status": run["status"],
            f"{label}_mode": run.get("mode"),
            f"{label}_read": round(run.get("n_read", run["n_points"]) / run["n_points"], 4),
            f"{label}_written": round(run["written"] / run["n_points"], 4),
            f"{label}_peak_rss_mb": round(peak),
            f"{label}_idle_rss_mb": round(idle),
            f"{label}_peak_anon_mb": round(memory.anon),
            f"{label}_idle_anon_mb": round(idle_anon),
            f"{label}_peak_pss_mb": _whole(memory.pss),
            f"{label}_idle_pss_mb": _whole(idle_pss),
            f"{label}_stages": run["seconds"],
            f"{label}_clusters": run["n_clusters"],
        }
        if n <= INDEX_MAX:  # what the background optimiser then does (off the run's path)
            t0 = time.perf_counter()
            store.optimize()
            result[f"{label}_optimize_after_s"] = round(time.perf_counter() - t0, 1)
        return result

    try:
        out.update(one("first"))
        out.update(one("unchanged"))
        if parts_check:
            out.update(_parts_check(store, settings, namer))
        fresh = [Ticket(id=f"new{i}", text=t) for i, t in enumerate(new_texts)]
        assigner = CentroidAssigner(store)
        t0 = time.perf_counter()
        for lo in range(0, len(fresh), 1000):  # as the ingestion consumer would: labelled at ingest
            _, labels = assigner.label(new[lo : lo + 1000])
            store.upsert_tickets(fresh[lo : lo + 1000], new[lo : lo + 1000], labels)
        out["new10_ingest_s"] = round(time.perf_counter() - t0, 1)
        if n <= INDEX_MAX:
            store.optimize()
        out.update(one("new10"))
        out.update(one("rebase", full=True))  # what a full run costs at this size (first run aside)
    finally:
        store.close()
    # the names the issue reads: memory of the new10 run, the shares of tickets written
    out["peak_rss_mb"], out["idle_rss_mb"] = out["new10_peak_rss_mb"], out["new10_idle_rss_mb"]
    out["peak_pss_mb"], out["idle_pss_mb"] = out["new10_peak_pss_mb"], out["new10_idle_pss_mb"]
    out["written_unchanged"], out["written_new10"] = out["unchanged_written"], out["new10_written"]
    return out


def _parts_check(store: Any, settings: Settings, namer: Any) -> dict[str, Any]:
    """A full run on unchanged data fanned out: P = 2 parts on a real worker with 2 threads (the same
    labels as the runs in one process before it)."""
    import redis
    from celery.contrib.testing.worker import start_worker

    from constellate.embedded_redis import redis_url, stop_embedded
    from worker import RECLUSTER_TASK, make_celery

    many = settings.model_copy(update={"recluster_parts": 2})
    url = redis_url(many)
    before = _labels(store)
    try:
        # an unindexed store (above INDEX_MAX) must stay so: the worker's background optimiser would
        # build a 1M-point HNSW graph (over an hour here, holding the GIL), which no run needs
        shared = store if store_indexed(store) else _NoOptimize(store)
        app = make_celery(many, url, store=shared, namer=namer)
        started = time.perf_counter()
        with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=60):
            sent = app.send_task(RECLUSTER_TASK, kwargs={"full": True}).get(timeout=3600)
            run = app.AsyncResult(sent["finish_task_id"]).get(timeout=3600)
        seconds = time.perf_counter() - started
        redis.Redis.from_url(url).flushall()
    finally:
        stop_embedded()
    after = _labels(store)
    return {
        "p2_s": round(seconds, 1),
        "p2_part_seconds": run.get("part_seconds"),
        "p2_written": run["written"],
        "p2_same_labels": before == after,
    }


def store_indexed(store: Any) -> bool:
    """Whether the bench built this store with its HNSW index (at most INDEX_MAX tickets)."""
    return store.count() <= INDEX_MAX


class _NoOptimize:
    """The store, with ``optimize()`` a no-op."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def optimize(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _labels(store: Any) -> bytes:
    """A digest of every ticket's live cluster id and outlier flag (to compare two labellings)."""
    import hashlib

    from constellate.labels import slot_field

    slot = store.get_state()["slot"]
    fields = [slot_field(slot, "cluster_id"), slot_field(slot, "is_outlier")]
    digest = hashlib.sha256()
    offset = None
    while True:
        records, offset = store.scroll_tickets(limit=4096, offset=offset, fields=fields)
        for r in records:
            digest.update(f"{r.id}:{r.payload.get(fields[0])}:{r.payload.get(fields[1])};".encode())
        if offset is None:
            return digest.digest()


def bench_scale(sizes: Sequence[int], say: Say, work: Path | None = None) -> dict[str, Any]:
    """The series over ``sizes``; each N in its own store and its own worker process."""
    from constellate.datasets import load_banking77
    from constellate.embedding import load_embedder

    items = load_banking77()
    labels = [i.label for i in items]
    held_out = max(set(labels), key=labels.count)  # the largest intent arrives later, as a new topic
    base_idx = [i for i, lab in enumerate(labels) if lab != held_out]
    new_idx = [i for i, lab in enumerate(labels) if lab == held_out]
    embedder = load_embedder()
    say(f"scale   embedding {len(items)} Banking77 texts (held out for new10: {held_out!r})")
    vectors = cached_vectors([i.text for i in items], embedder.embed, "banking77")
    results: dict[str, Any] = {"held_out_intent": held_out}
    root = Path(work or tempfile.mkdtemp(prefix="constellate-scale-"))
    for n in sizes:
        data = root / f"n{n}"
        base, texts = vectors[base_idx], [items[i].text for i in base_idx]
        build_s = build_store(data, n, base, texts, say)
        new_rows = np.arange(n // 10) % len(new_idx)
        new = jittered(vectors[new_idx], new_rows, seed=99)
        np.save(data / "new.npy", new)
        (data / "new.json").write_text(json.dumps([items[new_idx[r]].text for r in new_rows]))
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.scale",
                str(data),
                str(n),
                "1" if n == sizes[0] else "0",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            say(f"scale   N={n} failed: {child.stderr[-2000:]}")
            results[str(n)] = {"error": child.stderr[-2000:]}
            break
        series = json.loads(child.stdout.strip().splitlines()[-1])
        series["build_s"] = round(build_s, 1)
        results[str(n)] = series
        say(f"scale   N={n} json {json.dumps(series)}")  # every figure as soon as it is measured
        say(
            f"scale   N={n}: first {series['first_s']} s (peak {series['first_peak_rss_mb']} MB), "
            f"unchanged {series['unchanged_s']} s (wrote {series['unchanged_written']:.2%}), "
            f"new10 {series['new10_s']} s (wrote {series['new10_written']:.2%}, peak {series['new10_peak_rss_mb']} MB "
            f"vs idle {series['new10_idle_rss_mb']} MB; PSS {series['peak_pss_mb']} vs {series['idle_pss_mb']} MB), full rebase {series['rebase_s']} s "
            f"(wrote {series['rebase_written']:.2%})"
        )
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    return results


if __name__ == "__main__":  # the worker process of one N (see bench_scale)
    folder, size, check = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    fresh_vectors = np.load(folder / "new.npy")
    fresh_texts = json.loads((folder / "new.json").read_text())
    print(json.dumps(run_series(folder, size, fresh_vectors, fresh_texts, check)))
