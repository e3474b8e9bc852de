"""Cluster names: c-TF-IDF proposes candidate phrases per cluster, KeyBERT picks them by centroid.

Joining a cluster's texts into one document and embedding it would only see the first ~10 tickets
(MiniLM truncates at 256 tokens). Instead the candidates come from c-TF-IDF over up to
``max_docs`` members, and KeyBERT ranks them against the cluster centroid (``doc_embeddings``) with
MMR for variety — measured in DESIGN.md as the best names in 0.5 s for 40 clusters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from constellate.embedding import Embedder

# Support-ticket boilerplate that says nothing about the topic.
BOILERPLATE = frozenset(
    [
        "hi",
        "hello",
        "hey",
        "dear",
        "thanks",
        "thank",
        "thx",
        "ty",
        "please",
        "pls",
        "plz",
        "urgent",
        "urgently",
        "asap",
        "help",
        "helping",
        "need",
        "needs",
        "want",
        "wanted",
        "like",
        "just",
        "know",
        "does",
        "did",
        "don",
        "doesn",
        "didn",
        "im",
        "ive",
        "ll",
        "able",
        "wondering",
        "tell",
        "told",
        "ok",
        "okay",
        "yes",
        "hope",
        "regards",
        "cheers",
        "sir",
        "madam",
        "team",
        "kindly",
        "really",
        "way",
        "got",
        "getting",
        "make",
        "sure",
    ]
)
STOP_WORDS = sorted(ENGLISH_STOP_WORDS | BOILERPLATE)


class Namer(Protocol):
    """Keywords (best first) for each cluster from its member texts and centroid."""

    def keywords(self, docs: Sequence[Sequence[str]], centroids: np.ndarray) -> list[list[str]]: ...


def _keybert_backend(embedder: Embedder) -> Any:
    """A constellate :class:`Embedder` behind KeyBERT's backend interface (KeyBERT imported lazily)."""
    from keybert.backend import BaseEmbedder

    class Backend(BaseEmbedder):
        def embed(self, documents: list[str], verbose: bool = False) -> np.ndarray:
            return embedder.embed(documents)

    return Backend()


class KeyBERTNamer:
    """c-TF-IDF candidates (1–3-grams, stop words and boilerplate out) re-ranked by KeyBERT + MMR."""

    def __init__(
        self, embedder: Embedder, top_n: int = 4, candidates: int = 20, diversity: float = 0.5
    ) -> None:
        from keybert import KeyBERT

        self.embedder = embedder
        self.top_n = top_n
        self.candidates = candidates
        self.diversity = diversity
        self.kw = KeyBERT(model=_keybert_backend(embedder))

    def keywords(self, docs: Sequence[Sequence[str]], centroids: np.ndarray) -> list[list[str]]:
        joined = [" \n ".join(texts) for texts in docs]
        per_cluster = ctfidf_candidates(joined, self.candidates)
        vocabulary = sorted({term for terms in per_cluster for term in terms})
        if not vocabulary:
            return [[] for _ in docs]
        # Score each cluster only on its own candidates: a doc made of them, phrases kept whole.
        cluster_docs = [" | ".join(terms) for terms in per_cluster]
        vectorizer = CountVectorizer(vocabulary=vocabulary, ngram_range=(1, 3), lowercase=True).fit(
            cluster_docs
        )
        words = list(vectorizer.get_feature_names_out())
        word_embeddings = self.embedder.embed(words)
        result = self.kw.extract_keywords(
            cluster_docs,
            vectorizer=vectorizer,
            doc_embeddings=np.asarray(centroids, dtype=np.float32),
            word_embeddings=word_embeddings,
            use_mmr=True,
            diversity=self.diversity,
            top_n=self.top_n,
        )
        if result and isinstance(result[0], tuple):  # KeyBERT unwraps a single document
            result = [result]
        return [[term for term, _ in ranked] for ranked in result]


def ctfidf_candidates(docs: Sequence[str], top: int = 20) -> list[list[str]]:
    """Top ``top`` 1–3-gram terms per class document by class-based TF-IDF (BERTopic's c-TF-IDF)."""
    if not docs:
        return []
    try:
        vectorizer = CountVectorizer(
            ngram_range=(1, 3),
            stop_words=STOP_WORDS,
            lowercase=True,
            token_pattern=r"(?u)\b[a-zA-Z][\w'-]+\b",
        )
        counts = vectorizer.fit_transform(docs)
    except ValueError:  # only stop words
        return [[] for _ in docs]
    terms = vectorizer.get_feature_names_out()
    tf = counts.multiply(1.0 / np.maximum(counts.sum(axis=1), 1)).tocsr()
    avg_words = counts.sum() / max(len(docs), 1)
    idf = np.log(1.0 + avg_words / np.maximum(np.asarray(counts.sum(axis=0)).ravel(), 1))
    scores = tf.multiply(idf).tocsr()
    out = []
    for row in range(scores.shape[0]):
        data = scores.getrow(row)
        ranked = (str(terms[data.indices[i]]) for i in np.argsort(-data.data))
        # "card card" or "refund refund" say nothing more than "card": skip n-grams repeating a word.
        out.append([t for t in ranked if len(set(t.split())) == len(t.split())][:top])
    return out


def make_name(keywords: Sequence[str], taken: set[str], words: int = 3) -> str:
    """A readable name from the first keywords, made distinct from names already ``taken``."""
    if not keywords:
        base = "unnamed"
    else:
        base = "; ".join(keywords[:words])
        extra = list(keywords[words:])
        while base in taken and extra:
            base = f"{base}; {extra.pop(0)}"
    name, n = base, 2
    while name in taken:
        name = f"{base} ({n})"
        n += 1
    taken.add(name)
    return name


def keyword_overlap(a: Sequence[str], b: Sequence[str]) -> float:
    """Jaccard overlap of the words in two keyword lists (for name drift)."""
    wa = {w for k in a for w in k.split()}
    wb = {w for k in b for w in k.split()}
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0
