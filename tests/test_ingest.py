"""Direct ingestion: versions against out-of-order writes on the labelling path."""

from __future__ import annotations

import numpy as np

from constellate.ingest import ingest_tickets
from constellate.tickets import Ticket, point_id


class _SwitchingLabeller:
    """Labels against run r1, which a switch retires at once, so the batch is labelled again
    against r2 (the relabel path of ingest_tickets)."""

    def __init__(self) -> None:
        self.calls = 0

    def label(self, vectors, cleared=None):
        self.calls += 1
        run = f"r{self.calls}"
        return run, [{"a_cluster_id": 7, "a_label_run": run, "a_assigned_by": "ingest"} for _ in vectors]

    def is_current(self, run) -> bool:
        return run == "r2"


def test_a_relabel_never_lands_on_a_newer_text_than_it_was_computed_from(store, hash_embedder) -> None:
    store.ensure_collections(hash_embedder.dim)
    newer = Ticket(id="x", text="card declined twice at the same shop", version=20)
    store.upsert_tickets([newer], hash_embedder.embed([newer.text]), [{"a_cluster_id": 1}])
    labeller = _SwitchingLabeller()
    older = Ticket(id="x", text="card declined", version=10)  # a redelivered older entry
    ingest_tickets([older], store, hash_embedder, labeller=labeller)
    assert labeller.calls == 2  # the relabel path ran
    got = store.get_points([point_id("x")], with_vector=True)[0]
    assert got.payload["text"] == newer.text and got.payload["a_cluster_id"] == 1
    assert np.allclose(got.vector, hash_embedder.embed([newer.text])[0], atol=1e-5)
    again = Ticket(id="x", text="card declined again", version=30)  # a newer one is relabelled
    ingest_tickets([again], store, hash_embedder, labeller=_SwitchingLabeller())
    got = store.get_points([point_id("x")])[0]
    assert got.payload["text"] == again.text and got.payload["a_label_run"] == "r2"
