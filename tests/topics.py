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


def nested_data(
    topics: int = 3, clusters: int = 3, per_cluster: int = 40, dim: int = 32, seed: int = 0, prefix: str = "n"
) -> tuple[list[Ticket], np.ndarray, np.ndarray, np.ndarray]:
    """``topics`` topics of ``clusters`` clusters each: cluster centres near their topic's centre,
    topics far apart; texts share a topic word and a cluster word. Returns tickets, vectors, the
    gold cluster and the gold topic of each ticket."""
    rng = np.random.default_rng(seed)
    centres = normalize(np.random.default_rng(2000 + dim).normal(size=(topics, dim)))
    offsets = normalize(np.random.default_rng(3000 + dim).normal(size=(topics * clusters, dim)))
    tickets, vectors, gold, gold_topic = [], [], [], []
    for c in range(topics * clusters):
        t = c // clusters
        centre = normalize((centres[t] + 0.7 * offsets[c])[None, :])[0]
        for i in range(per_cluster):
            vectors.append(centre + rng.normal(scale=0.06, size=dim))
            words = WORDS[t % len(WORDS)]
            text = f"{words[0]} {words[1 + c % 2]} item{c} {rng.choice(['now', 'today', 'again'])} {i}"
            tickets.append(Ticket(id=f"{prefix}{c}-{i}", text=text))
            gold.append(c)
            gold_topic.append(t)
    return tickets, normalize(np.asarray(vectors)), np.asarray(gold), np.asarray(gold_topic)
