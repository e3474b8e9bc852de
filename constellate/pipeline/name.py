"""Name stage: keywords and a name (a phrase members say) per final cluster from the sample's texts;
pins, renames and drift (judged on the keywords).

Naming reads only the fit sample (at most ``NAMING_DOCS`` member texts per cluster), so its cost does
not grow with the history. Sizes are filled in after the labelling pass has counted every ticket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from constellate.candidates import keyword_overlap, make_name
from constellate.naming import Namer
from constellate.pipeline.plan import Plan
from constellate.pipeline.sample import Sample

NAMING_DOCS = 200  # member texts per cluster fed to c-TF-IDF


def name_clusters(
    plan: Plan,
    sample: Sample,
    previous: Mapping[int, dict[str, Any]],
    renames: Mapping[int, tuple[str, bool]],
    namer: Namer | None,
    name_keywords: int,
    name_drift: float,
    exemplars: int,
    seed: int,
    rows: Sequence[int] | None = None,
    taken: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Catalogue entries (no ``size`` yet): keywords, name (kept, drifted, pinned or renamed),
    exemplar ticket ids nearest the centroid, parents, born/updated run — for every cluster of the
    plan, or only for ``rows`` (their names kept distinct from the other clusters' current names
    and from ``taken``)."""
    rng = np.random.default_rng(seed)
    row = plan.row_of()
    named = list(range(len(plan.cluster_ids))) if rows is None else list(rows)
    labels = np.array([row[plan.sample_labels[pid]] for pid in sample.ids], dtype=np.int64)
    similarity = np.einsum("ij,ij->i", sample.vectors, plan.centroids[labels]) if len(sample) else np.zeros(0)
    members = {c: np.flatnonzero(labels == c) for c in named}
    docs, vectors = _naming_docs(sample, [members[c] for c in named], rng)
    cents = plan.centroids[named]
    found = namer.keywords(docs, cents, vectors) if namer is not None and named else [[] for _ in named]
    keywords = dict(zip(named, found, strict=True))
    said = namer.phrases(docs, cents, vectors) if namer is not None and named else [[] for _ in named]
    phrases = dict(zip(named, said, strict=True))

    continued = {e["cluster_id"] for e in plan.lineage_events if e["event"] == "continued"}
    run_id = plan.run_id
    others = set(range(len(plan.cluster_ids))) - set(named)
    taken = set(taken or ()) | {
        str(previous[plan.cluster_ids[c]]["name"]) for c in others if plan.cluster_ids[c] in previous
    }
    # Keep names first (renamed, pinned, then undrifted continued clusters) so new names avoid them.
    order = sorted(
        named, key=lambda c: (plan.cluster_ids[c] not in renames, plan.cluster_ids[c] not in continued, c)
    )
    drafts: dict[int, dict[str, Any]] = {}
    for c in order:
        cid = plan.cluster_ids[c]
        prev = previous.get(cid) if cid in continued else None
        kws = keywords[c][:name_keywords]
        if cid in renames and renames[cid][1]:  # a pinned human name, whenever it was given
            name, pinned = renames[cid]
            name_kws = (prev or {}).get("name_keywords", kws)
        elif prev and prev.get("pinned"):
            name, name_kws, pinned = prev["name"], prev.get("name_keywords", kws), True
        elif prev and keyword_overlap(prev.get("name_keywords", []), kws) >= name_drift:
            name, name_kws, pinned = prev["name"], prev.get("name_keywords", kws), False
        else:
            name, name_kws, pinned = None, kws, False
        if name is not None:
            taken.add(name)
        drafts[c] = {"name": name, "name_keywords": name_kws, "pinned": pinned, "keywords": kws}
    for c in order:
        if drafts[c]["name"] is None:
            drafts[c]["name"] = make_name(drafts[c]["keywords"], taken, phrases[c])
    entries = []
    for c in named:
        cid = plan.cluster_ids[c]
        prev = previous.get(cid)
        m = members[c]
        nearest = [sample.ticket_ids[i] for i in m[np.argsort(-similarity[m])[:exemplars]]]
        entries.append(
            {
                "cluster_id": cid,
                **drafts[c],
                "exemplars": nearest,
                "parents": plan.parents[c],
                "born_run": (prev or {}).get("born_run", run_id)
                if cid in continued or cid in previous
                else run_id,
                "updated_run": run_id,
            }
        )
    return entries


def _naming_docs(
    sample: Sample, members: Sequence[np.ndarray], rng: np.random.Generator
) -> tuple[list[list[str]], list[np.ndarray]]:
    """Per cluster, at most ``NAMING_DOCS`` of its members' texts (seeded draw, sample order) and
    their vectors."""
    docs, vectors = [], []
    for m in members:
        picked = m if len(m) <= NAMING_DOCS else np.sort(rng.choice(m, NAMING_DOCS, replace=False))
        docs.append([sample.texts[i] for i in picked])
        vectors.append(sample.vectors[picked])
    return docs, vectors


def keep_entries(
    plan: Plan, previous: Mapping[int, dict[str, Any]], fresh: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """An incremental run's catalogue entries in plan order: the live clusters' entries as they are
    (names, keywords, exemplars, lineage), the born ones from ``fresh``."""
    kept = ("name", "name_keywords", "keywords", "pinned", "exemplars", "parents", "born_run")
    born = {int(e["cluster_id"]): e for e in fresh}
    out = []
    for cid in plan.cluster_ids:
        if cid in born:
            out.append(born[cid])
        else:
            entry = previous.get(cid, {})
            out.append({"cluster_id": cid, **{k: entry.get(k) for k in kept}, "updated_run": plan.run_id})
    return out
