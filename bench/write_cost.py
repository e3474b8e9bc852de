"""What one label write costs in qdrant-edge: first write vs rewrite, label fields indexed or not.

    .venv/bin/python -m bench.write_cost [N] [DIR] [indexes|sparse|gil]

Fills a shard on disk (under DIR, default the system temp dir) with N random points carrying a
ticket's text, optimises it, then writes label payloads in groups of 4,096 ids as a run does:
both slots for the first time, one slot again, one field again. Run once with the label fields
indexed (as the store creates them) and once without. With ``indexes``: an unoptimised shard (as
the bench's 1M store), label payloads grouped by (cluster, score) as a run writes them, both slots
written once with every label index, without the three low-cardinality keyword indexes, and with
none. With ``sparse``: the same first write with every label value stored vs the sparse label
fields a run writes now (docs/architecture.md). With ``gil``: the same writes alone and beside a
thread running Python (as the pass reads and scores pages beside a writer thread): whether a
writer thread can overlap the pass. Figures in docs/scaling.md and docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from constellate.store.base import TICKET_INDEXES
from constellate.store.edge import EdgeCollection

TEXT = "I was charged twice for my card payment yesterday, please help"
GROUP = 4096


def labels(slot: str, run: str, cluster_id: int = 7, score: float = 0.42) -> dict[str, Any]:
    """One slot's label fields as a run writes them."""
    return {
        f"{slot}_cluster_id": cluster_id,
        f"{slot}_is_outlier": score > 0.7,
        f"{slot}_outlier_score": score,
        f"{slot}_assigned_by": "recluster",
        f"{slot}_label_run": run,
    }


def filled(
    path: Path, n: int, indexes: dict[str, str], optimise: bool = True
) -> tuple[EdgeCollection, list[str]]:
    """A shard of ``n`` random points with ticket payloads (optimised unless ``optimise`` is False)."""
    rng = np.random.default_rng(0)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"x{i}")) for i in range(n)]
    shard = EdgeCollection(path)
    shard.create(384, indexes)
    for lo in range(0, n, 5000):
        hi = min(n, lo + 5000)
        vectors = rng.normal(size=(hi - lo, 384)).astype(np.float32)
        shard.upsert(ids[lo:hi], vectors, [{"ticket_id": f"x{i}", "text": TEXT} for i in range(lo, hi)])
    if optimise:
        shard.optimize()
    return shard, sorted(ids)


def per_point_us(shard: EdgeCollection, ids: list[str], payload: Callable[[], dict[str, Any]]) -> float:
    """Microseconds per point to write ``payload`` on every point, in groups."""
    started = time.perf_counter()
    for lo in range(0, len(ids), GROUP):
        shard.set_payload(ids[lo : lo + GROUP], payload())
    return (time.perf_counter() - started) / len(ids) * 1e6


def main(n: int, where: str | None) -> None:
    unindexed = {k: v for k, v in TICKET_INDEXES.items() if not k.startswith(("a_", "b_"))}
    for name, indexes in (("label fields indexed", TICKET_INDEXES), ("label fields unindexed", unindexed)):
        with tempfile.TemporaryDirectory(dir=where) as tmp:
            shard, ids = filled(Path(tmp), n, indexes)
            first = per_point_us(shard, ids, lambda: {**labels("a", "r1"), **labels("b", "r1")})
            again = per_point_us(shard, ids, lambda: labels("a", "r2"))
            field = per_point_us(shard, ids, lambda: {"a_label_run": "r3"})
            shard.close()
            print(
                f"{name}: first write of both slots {first:.1f} us/point, "
                f"one slot again {again:.1f}, one field again {field:.1f}",
                flush=True,
            )


def grouped(n: int) -> dict[tuple[int, float], list[str]]:
    """``filled``'s ids grouped by (cluster, 0.05 score bucket), as a run groups its label writes."""
    rng = np.random.default_rng(0)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"x{i}")) for i in range(n)]
    clusters = rng.integers(0, 100, n)
    scores = np.round(rng.random(n) * 0.8 / 0.05) * 0.05
    groups: dict[tuple[int, float], list[str]] = {}
    for pid, c, sc in zip(ids, clusters.tolist(), scores.tolist(), strict=True):
        groups.setdefault((c, sc), []).append(pid)
    return groups


LOW_CARDINALITY = ("assigned_by", "label_run", "is_outlier")
ALL_LABELS = ("cluster_id", "outlier_score", *LOW_CARDINALITY)


def index_cost(n: int, where: str | None) -> None:
    """Microseconds per point for a first write of both slots, by which label fields are indexed."""
    groups = grouped(n)
    for dropped in ((), LOW_CARDINALITY, ALL_LABELS):
        indexes = {k: v for k, v in TICKET_INDEXES.items() if not k.endswith(tuple("_" + d for d in dropped))}
        with tempfile.TemporaryDirectory(dir=where) as tmp:
            shard, _ = filled(Path(tmp), n, indexes, optimise=False)
            started = time.perf_counter()
            for (c, sc), members in groups.items():
                for lo in range(0, len(members), GROUP):
                    payload = {**labels("a", "r1", c, sc), **labels("b", "r1", c, sc)}
                    shard.set_payload(members[lo : lo + GROUP], payload)
            us = (time.perf_counter() - started) / n * 1e6
            shard.close()
            print(
                f"first write of both slots, label indexes left out: {list(dropped)}: {us:.1f} us/point",
                flush=True,
            )


def every_value(slot: str, run: str, cluster_id: int, score: float) -> dict[str, Any]:
    """A first run's label with every value stored (before the sparse label fields)."""
    return {
        **labels(slot, run, cluster_id, score),
        f"{slot}_is_outlier__kw": "true" if score > 0.7 else "false",
    }


def sparse(slot: str, run: str, cluster_id: int, score: float) -> dict[str, Any]:
    """A first run's label as it is written now: no run id, no assigned_by, the twin only if flagged."""
    flagged = {f"{slot}_is_outlier__kw": "true"} if score > 0.7 else {}
    return {
        f"{slot}_cluster_id": cluster_id,
        f"{slot}_outlier_score": score,
        f"{slot}_is_outlier": score > 0.7,
        **flagged,
    }


def sparse_cost(n: int, where: str | None) -> None:
    """Microseconds per point for a first write of both slots, every label index in place: every
    value stored vs the sparse fields (written to the shard directly, so the adapter adds no twin)."""
    groups = grouped(n)
    # as the edge adapter creates them: a bool field's index is its keyword twin's
    indexes = dict((k + "__kw", "keyword") if v == "bool" else (k, v) for k, v in TICKET_INDEXES.items())
    for name, make in (("every value", every_value), ("sparse", sparse)):
        with tempfile.TemporaryDirectory(dir=where) as tmp:
            shard, _ = filled(Path(tmp), n, indexes, optimise=False)
            started = time.perf_counter()
            for (c, sc), members in groups.items():
                payload = {**make("a", "r1", c, sc), **make("b", "r1", c, sc)}
                for lo in range(0, len(members), GROUP):
                    shard.shard.update(qe.UpdateOperation.set_payload(members[lo : lo + GROUP], payload))
            us = (time.perf_counter() - started) / n * 1e6
            shard.close()
            print(f"first write of both slots, {name}: {us:.1f} us/point", flush=True)


def gil_cost(n: int, where: str | None) -> None:
    """Microseconds per point for label writes (groups of 4,096 and of 14, the mean group of a real
    first run) made alone and beside a thread running a Python loop, and how far that thread got."""
    import threading

    for group, busy in ((GROUP, False), (GROUP, True), (14, False), (14, True)):
        with tempfile.TemporaryDirectory(dir=where) as tmp:
            shard, ids = filled(Path(tmp), n, TICKET_INDEXES, optimise=False)
            stop, ticks = threading.Event(), [0]

            def spin(stop: threading.Event = stop, ticks: list[int] = ticks) -> None:
                while not stop.is_set():
                    sum(range(1000))
                    ticks[0] += 1

            spinner = threading.Thread(target=spin)
            if busy:
                spinner.start()
            started = time.perf_counter()
            for k, lo in enumerate(range(0, n, group)):
                shard.set_payload(
                    ids[lo : lo + group], {**labels("a", "r1", k % 80), **labels("b", "r1", k % 80)}
                )
            seconds = time.perf_counter() - started
            stop.set()
            if busy:
                spinner.join()
            shard.close()
            print(
                f"groups of {group}, {'beside a busy thread' if busy else 'alone'}: "
                f"{seconds / n * 1e6:.1f} us/point; the other thread ran {ticks[0] / seconds:.0f} loops/s",
                flush=True,
            )


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    folder = sys.argv[2] if len(sys.argv) > 2 else None
    if len(sys.argv) > 3 and sys.argv[3] == "indexes":
        index_cost(size, folder)
    elif len(sys.argv) > 3 and sys.argv[3] == "sparse":
        sparse_cost(size, folder)
    elif len(sys.argv) > 3 and sys.argv[3] == "gil":
        gil_cost(size, folder)
    else:
        main(size, folder)
