"""`constellate recluster` and `constellate evaluate` with the real model on Banking77."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from constellate.cli import main
from constellate.config import Settings
from constellate.datasets import load_banking77, load_labelled
from constellate.store import edge_store
from tests.views import all_views

pytestmark = pytest.mark.slow


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows))
    return path


def _live_labels(data_dir: Path) -> dict[str, tuple[int, str]]:
    """Every ticket's live cluster id and name, as readers see them (names from the catalogue)."""
    store = edge_store(Settings(data_dir=data_dir))
    try:
        return {tid: (v["cluster_id"], v["cluster_name"]) for tid, v in all_views(store).items()}
    finally:
        store.close()


def test_recluster_is_stable_and_a_new_intent_is_born(tmp_path: Path, real_embedder) -> None:
    by_label: dict[str, list[str]] = defaultdict(list)
    for item in load_banking77(["train"]):
        by_label[item.label].append(item.text)
    labels = sorted(by_label)[:8]
    base = [(f"{lab}-{i}", t) for lab in labels for i, t in enumerate(by_label[lab][:110])]
    # a topic banking never had (HWU64's alarm requests), 12.5 % more tickets
    alarms = [item.text for item in load_labelled("hwu") if item.label == "alarm_set"][:110]
    extra = [(f"alarm-{i}", t) for i, t in enumerate(alarms)]
    data_dir = tmp_path / "d"

    assert (
        _run("ingest", str(_write(tmp_path / "a.jsonl", base)), "--data-dir", str(data_dir), "--json")[0] == 0
    )
    code, out = _run("recluster", "--data-dir", str(data_dir), "--json")
    assert code == 0
    first = json.loads(out)
    assert first["status"] == "succeeded" and first["n_points"] == len(base)
    assert first["n_clusters"] >= 6
    labels1 = _live_labels(data_dir)

    code, out = _run("recluster", "--data-dir", str(data_dir))  # the human-readable summary
    assert code == 0 and "tickets ->" in out and "name" in out
    labels2 = _live_labels(data_dir)
    same = np.mean([labels1[k][0] == labels2[k][0] for k in labels1])
    assert same >= 0.95
    names1 = {cid: name for cid, name in labels1.values()}
    names2 = {cid: name for cid, name in labels2.values()}
    assert names1 == names2

    assert (
        _run("ingest", str(_write(tmp_path / "b.jsonl", extra)), "--data-dir", str(data_dir), "--json")[0]
        == 0
    )
    code, out = _run("recluster", "--data-dir", str(data_dir), "--json")
    third = json.loads(out)
    born = {e["cluster_id"] for e in third["events"] if e["event"] == "born"}
    assert born, third["events"]
    labels3 = _live_labels(data_dir)
    new_ids = [labels3[k][0] for k, _ in extra]
    in_born = [labels3[k][0] in born for k in labels3]
    new_share = np.mean([c in born for c in new_ids])
    purity = sum(1 for k, _ in extra if labels3[k][0] in born) / max(sum(in_born), 1)
    print(f"new topic: {new_share:.2f} in born clusters {sorted(born)}, born purity {purity:.2f}")
    assert new_share >= 0.6  # most of the new intent lands in newly born clusters...
    assert purity >= 0.8  # ...which hold little of the old tickets
    kept = np.mean([labels3[k][0] == labels2[k][0] for k in labels2])
    continued = sum(1 for e in third["events"] if e["event"] == "continued")
    print(
        f"old tickets that kept their cluster id: {kept:.3f}; clusters continued {continued}/{first['n_clusters']}"
    )
    # Measured: 0.86 of old tickets and 23 of 28 clusters kept their ids; the rest were fragments of
    # the same intents merging (HDBSCAN splits intents by phrasing at this small size).
    assert kept >= 0.75
    assert continued >= 0.7 * first["n_clusters"]


def test_evaluate_banking77_meets_the_quality_bar() -> None:
    code, out = _run("evaluate", "--dataset", "banking77", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["n"] == 13083 and result["gold_labels"] == 77
    # The bar, V >= 0.80. Before the density noise was assigned by seeded k-means this
    # command gave 0.8005 on an AMD EPYC and 0.7996 on an Intel Xeon with ONNX Runtime fp32 vectors
    # (the float kernels differ); with it 0.8039 on the AMD machine (the step added 0.0038-0.0082
    # over nine seeds and orders), and 0.8122 with the default OpenVINO encoder there (bf16, cosine
    # 0.99999 to torch). On a CPU without native bf16 the encoder runs fp32, like ONNX Runtime.
    assert result["v_measure"] >= 0.80
    assert result["ari"] >= 0.50
    assert result["outlier_fraction"] <= 0.12
    # Phrase names sit nearer the gold intents than keyword names of the same clusters (measured:
    # 0.75 vs 0.67 over 88 clusters, the paired difference about 4 standard errors).
    assert result["name_label_similarity"] >= result["name_label_similarity_keywords"] + 0.04


def test_ingest_after_a_run_labels_tickets_at_once(tmp_path: Path, real_embedder) -> None:
    texts = [item.text for item in load_banking77(["dev"])[:700]]
    data_dir = tmp_path / "d"
    first = [(f"a{i}", t) for i, t in enumerate(texts[:600])]
    later = [(f"b{i}", t) for i, t in enumerate(texts[600:])]
    for name, rows in (("a.jsonl", first), ("b.jsonl", later)):
        code, _ = _run("ingest", str(_write(tmp_path / name, rows)), "--data-dir", str(data_dir), "--json")
        assert code == 0
        if name == "a.jsonl":
            assert _run("recluster", "--data-dir", str(data_dir), "--json")[0] == 0
    labels = _live_labels(data_dir)
    assert all(labels[k][0] is not None and labels[k][1] for k, _ in later)


def test_evaluate_scores_the_topics_against_a_coarser_gold_level(tmp_path: Path) -> None:
    # HWU64's labels are scenario_intent: the prefix before "_" is one of its 18 scenarios
    items = [i for i in load_labelled("hwu", ["test"])]
    keep = sorted({i.label.split("_", 1)[0] for i in items})[:6]
    rows = [i for i in items if i.label.split("_", 1)[0] in keep]
    path = tmp_path / "hwu.jsonl"
    path.write_text("".join(json.dumps({"text": i.text, "intent": i.label}) + "\n" for i in rows))
    code, out = _run(
        "evaluate", "--input", str(path), "--label-field", "intent", "--parent-from-prefix", "_", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert result["gold_parents"] == 6 and result["topics"] >= 2
    print(f"topics {result['topics']}: V {result['topic_v_measure']}, ARI {result['topic_ari']}")
    assert result["topic_v_measure"] > 0.3 and result["topic_ari"] > 0.1  # far from chance (0)
    assert result["topics"] < result["clusters"]
