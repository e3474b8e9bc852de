"""Identity matching on constructed continuations, splits, merges, births and deaths."""

from __future__ import annotations

import numpy as np

from constellate.embedding import normalize
from constellate.identity import match_clusters


def _centroids(k: int, seed: int = 0) -> np.ndarray:
    return normalize(np.random.default_rng(seed).normal(size=(k, 16)))


def _events(lineage) -> dict[str, list]:
    out: dict[str, list] = {}
    for e in lineage.events:
        out.setdefault(e["event"], []).append(e)
    return out


def test_first_run_gives_fresh_ids() -> None:
    lineage = match_clusters(np.array([0, 0, 1, 2]), _centroids(3), np.full(4, -1), {}, next_id=0)
    assert lineage.ids == [0, 1, 2]
    assert [e["event"] for e in lineage.events] == ["born"] * 3
    assert lineage.next_id == 3


def test_same_partition_under_shuffled_labels_keeps_ids() -> None:
    prev = np.repeat([10, 11, 12], 50)
    new = np.repeat([2, 0, 1], 50)  # same groups, new numbering
    c = _centroids(3)
    lineage = match_clusters(new, c, prev, {10: c[2], 11: c[0], 12: c[1]}, next_id=13)
    assert lineage.ids == [11, 12, 10]
    assert {e["event"] for e in lineage.events} == {"continued"}
    assert lineage.next_id == 13


def test_split_merge_birth_and_death() -> None:
    # previous: A=0 (100), B=1 (100), C=2 (50), D=3 (40)
    prev = np.concatenate([np.full(100, 0), np.full(100, 1), np.full(50, 2), np.full(40, 3), np.full(60, -1)])
    # new: A continues but half of it splits off (new 0 + new 1), B and C merge (new 2),
    # D scatters into noise-level pieces of others (dies), 60 fresh tickets form a new topic (new 3).
    new = np.concatenate(
        [
            np.full(50, 0),
            np.full(50, 1),
            np.full(100, 2),
            np.full(50, 2),
            np.tile([0, 1, 2, 3], 10),
            np.full(60, 3),
        ]
    )
    c = _centroids(4, seed=1)
    prev_c = dict(enumerate(_centroids(4, seed=2)))
    lineage = match_clusters(new, c, prev, prev_c, next_id=4)
    ev = _events(lineage)
    assert lineage.ids[2] == 1  # B continues (B is the bigger part of the merge)
    assert lineage.ids[0] == 0 or lineage.ids[1] == 0  # A continues in one half...
    split_child = 1 if lineage.ids[0] == 0 else 0
    assert ev["split"] == [
        {"event": "split", "cluster_id": lineage.ids[split_child], "from": 0}
    ]  # ...the other splits
    assert ev["merged"] == [{"event": "merged", "cluster_id": 2, "into": 1}]
    assert sorted(lineage.parents[2]) == [1, 2]
    assert ev["died"] == [{"event": "died", "cluster_id": 3}]
    assert ev["born"] == [{"event": "born", "cluster_id": lineage.ids[3]}]
    assert lineage.ids[3] >= 4 and len(set(lineage.ids)) == 4


def test_centroid_similarity_matches_when_members_are_all_new() -> None:
    c = _centroids(2)
    lineage = match_clusters(np.array([0, 0, 1, 1]), c, np.full(4, -1), {7: c[1], 9: c[0]}, next_id=10)
    assert lineage.ids == [9, 7]
