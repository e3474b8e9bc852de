"""Probe: qdrant-edge maps its vector file twice, so RSS counts those pages twice and PSS once.

``python -m bench.double_map [N]`` builds a shard of N random 384-d vectors in a temporary
directory, opens it afresh, reads every vector (a scroll) and then runs one exact search, printing
after each step the resident size of the vector files' mappings (RSS and PSS) and of the process.
The search leaves RSS larger by about the vector file's size while PSS — and the machine's
available memory — stay where they were: the same page-cache pages, mapped a second time.
"""

from __future__ import annotations

import re
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np

from bench.scale import _rss_mb, proc_mb


def vector_maps() -> dict[str, int]:
    """RSS and PSS (MB) of this process's mappings of qdrant-edge vector chunk files, and how many
    memory regions map them (two per chunk file here: PSS divides a page among the mappings that
    share it, RSS counts it in each)."""
    kb = {"Rss:": 0, "Pss:": 0}
    regions = 0
    name = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            name = parts[5] if len(parts) > 5 else ""
            regions += "chunk_" in name
        elif "chunk_" in name and parts[0] in kb:
            kb[parts[0]] += int(parts[1])
    return {"rss_mb": kb["Rss:"] // 1024, "pss_mb": kb["Pss:"] // 1024, "regions": regions}


def main(n: int) -> None:
    import qdrant_edge as qe

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="double-map-") as tmp:
        shard = qe.EdgeShard.create(
            tmp, qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=384, distance=qe.Distance.Cosine))
        )
        for lo in range(0, n, 10_000):
            vectors = rng.standard_normal((min(10_000, n - lo), 384)).astype(np.float32)
            points = [qe.Point(str(uuid.UUID(int=lo + i + 1)), v.tolist(), {}) for i, v in enumerate(vectors)]
            shard.update(qe.UpdateOperation.upsert_points(points))
        shard.flush()
        shard.close()
        shard = qe.EdgeShard.load(tmp)

        def say(step: str) -> None:
            available = proc_mb("/proc/meminfo", "MemAvailable")
            print(
                f"{step:8s} vector files {vector_maps()}  VmRSS {_rss_mb():.0f} MB  MemAvailable {available:.0f} MB",
                flush=True,
            )

        say("opened")
        offset = None
        while True:
            points, offset = shard.scroll(qe.ScrollRequest(limit=4096, offset=offset, with_vector=True))
            for p in points:
                p.vector  # noqa: B018 - the binding converts on access
            if offset is None:
                break
        say("scrolled")
        query = qe.Query.Nearest(rng.standard_normal(384).tolist())
        shard.query(qe.QueryRequest(query=query, limit=10, params=qe.SearchParams(exact=True)))
        say("searched")
        shard.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
