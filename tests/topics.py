"""Synthetic ticket topics for fast tests: vectors around topic centres and texts with topic words."""

from __future__ import annotations

import numpy as np

from constellate.embedding import normalize
from constellate.tickets import Ticket

WORDS = [
    ("refund", "money", "back"),
    ("card", "declined", "payment"),
    ("password", "reset", "login"),
    ("delivery", "late", "parcel"),
    ("invoice", "billing", "charge"),
    ("account", "locked", "security"),
    ("app", "crash", "update"),
    ("exchange", "currency", "rate"),
]


def topic_data(
    topics: int,
    per_topic: int,
    dim: int = 32,
    spread: float = 0.12,
    seed: int = 0,
    prefix: str = "t",
    start: int = 0,
) -> tuple[list[Ticket], np.ndarray, np.ndarray]:
    """``topics`` well-separated topics (from ``start`` in WORDS) of ``per_topic`` tickets each."""
    rng = np.random.default_rng(seed)
    centres = normalize(np.random.default_rng(1000 + dim).normal(size=(len(WORDS), dim)))
    tickets, vectors, gold = [], [], []
    for t in range(start, start + topics):
        words = WORDS[t]
        for i in range(per_topic):
            vectors.append(centres[t] + rng.normal(scale=spread, size=dim))
            filler = rng.choice(["please", "hi", "today", "again", "now"])
            text = f"{words[0]} {words[1]} {filler} {words[2]} {rng.integers(100)}"
            tickets.append(Ticket(id=f"{prefix}{t}-{i}", text=text))
            gold.append(t)
    return tickets, normalize(np.asarray(vectors)), np.asarray(gold)
