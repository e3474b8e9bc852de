"""Cluster keywords and names.

Keywords: c-TF-IDF proposes candidate terms per cluster, KeyBERT picks them by centroid. Joining a
cluster's texts into one document and embedding it would only see the first ~10 tickets (MiniLM
truncates at 256 tokens). Instead the candidates come from c-TF-IDF over the members given, and
KeyBERT's MMR ranks them against the cluster centroid for variety, a candidate's vector being the
mean of the vectors of the members that contain it (no encoder call; ``encode_candidates`` embeds
each candidate string instead, the former path).

Names: a short phrase the members actually say ("Card payment declined"), not keywords joined.
Candidates are 2–5-word spans of member texts (articles, possessives and forms of "be"/"have"
dropped; no stop word or boilerplate at either end, no greeting anywhere) said by at least 2 % of
the members; the most distinctive (share in the cluster vs in all clusters) are ranked by
similarity to the cluster's centroid minus part of their similarity to the nearest other centroid,
first on the mean of the members saying each, then each cluster's top few again on their own
embeddings. :func:`make_name` takes the first one no other cluster has, else the keyword name.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from constellate.candidates import (
    ctfidf_candidates,
    ctfidf_vectorizer,
    distinctive_phrases,
    phrase_sets,
    sentence_case,
    top_terms,
    written_forms,
)
from constellate.embedding import Embedder, embed_short, normalize

if TYPE_CHECKING:
    from constellate.config import Settings

EMBED_CACHE = 20_000  # terms and phrases a namer keeps vectors of (384 floats each: ~30 MB)

Vectors = Sequence[np.ndarray] | None  # per cluster, the vectors of its ``docs`` (one row per text)


class Namer(Protocol):
    """Keywords and candidate names (best first) for each cluster from its member texts and centroid
    (and, where the caller has them, the member texts' vectors: ``vectors[c][i]`` is ``docs[c][i]``'s)."""

    def keywords(
        self, docs: Sequence[Sequence[str]], centroids: np.ndarray, vectors: Vectors = None
    ) -> list[list[str]]: ...

    def phrases(
        self, docs: Sequence[Sequence[str]], centroids: np.ndarray, vectors: Vectors = None
    ) -> list[list[str]]: ...


def _keybert_backend(embedder: Embedder) -> Any:
    """A constellate :class:`Embedder` behind KeyBERT's backend interface (KeyBERT imported lazily)."""
    from keybert.backend import BaseEmbedder

    class Backend(BaseEmbedder):
        def embed(self, documents: list[str], verbose: bool = False) -> np.ndarray:
            return embedder.embed(documents)

    return Backend()


class KeyBERTNamer:
    """Keywords: c-TF-IDF's top ``candidates`` terms (1–3-grams, stop words and boilerplate out)
    re-ranked by KeyBERT's MMR against the centroid. Names: member phrases ranked by centroid
    similarity (:meth:`phrases`).

    A candidate's vector is, given the member texts' ``vectors``, the normalised mean of the vectors
    of the members that say it (:func:`member_means`): no encoder call. Without them, or with
    ``encode_candidates``, each candidate string is embedded (cached per namer), which was ~80 % of
    naming's time on Banking77 (docs/backends.md)."""

    def __init__(
        self,
        embedder: Embedder,
        top_n: int = 4,
        candidates: int = 10,
        diversity: float = 0.5,
        phrase_candidates: int = 15,
        phrase_min_share: float = 0.02,
        phrase_other_weight: float = 0.4,
        encode_candidates: bool = False,
        phrase_encoded: int = 3,
        phrase_length_bonus: float = 0.02,
    ) -> None:
        from keybert import KeyBERT

        self.embedder = embedder
        self.top_n = top_n
        self.candidates = candidates
        self.diversity = diversity
        self.phrase_candidates = phrase_candidates
        self.phrase_min_share = phrase_min_share
        self.phrase_other_weight = phrase_other_weight
        self.encode_candidates = encode_candidates
        self.phrase_encoded = phrase_encoded
        self.phrase_length_bonus = phrase_length_bonus
        self.kw = KeyBERT(model=_keybert_backend(embedder))
        self._vectors: dict[str, np.ndarray] = {}  # terms and phrases embedded, least recently used first
        self._lock = threading.Lock()

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of short ``texts``, each embedded once while it stays among the
        :data:`EMBED_CACHE` most recently used (keywords and phrases share many; unchanged clusters
        ask for the same ones again, so the terms every run asks for are never evicted)."""
        with self._lock:  # the hits are taken now: another thread may evict them meanwhile
            known = {t: self._vectors.pop(t) for t in dict.fromkeys(texts) if t in self._vectors}
            self._vectors.update(known)  # a hit becomes the most recently used
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        fresh = embed_short(self.embedder, missing) if missing else np.zeros((0, 0), dtype=np.float32)
        known.update(zip(missing, fresh, strict=True))
        with self._lock:
            self._vectors.update(zip(missing, fresh, strict=True))
            while len(self._vectors) > EMBED_CACHE:
                self._vectors.pop(next(iter(self._vectors)))
        return (
            np.stack([known[t] for t in texts])
            if texts
            else np.zeros((0, self.embedder.dim), dtype=np.float32)
        )

    def _from_members(self, docs: Sequence[Sequence[str]], vectors: Vectors) -> bool:
        if vectors is None or self.encode_candidates:
            return False
        if len(vectors) != len(docs) or any(len(v) != len(d) for v, d in zip(vectors, docs, strict=True)):
            raise ValueError("vectors must hold one row per member text of each cluster")
        return True

    def keywords(
        self, docs: Sequence[Sequence[str]], centroids: np.ndarray, vectors: Vectors = None
    ) -> list[list[str]]:
        if self._from_members(docs, vectors):
            assert vectors is not None
            return self._member_keywords(docs, centroids, vectors)
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
        word_embeddings = self._embed(words)
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

    def _member_keywords(
        self, docs: Sequence[Sequence[str]], centroids: np.ndarray, vectors: Sequence[np.ndarray]
    ) -> list[list[str]]:
        """KeyBERT's MMR over each cluster's c-TF-IDF candidates, a candidate's vector the mean of
        the members containing it. The texts are counted one by one (c-TF-IDF's class counts are
        their sums), so the same count says which members contain a term."""
        from keybert._mmr import mmr

        texts = [t for ts in docs for t in ts]
        try:
            vectorizer = ctfidf_vectorizer(dtype=np.float32)
            per_text = vectorizer.fit_transform(texts).tocsr()
        except ValueError:  # only stop words
            return [[] for _ in docs]
        terms = vectorizer.get_feature_names_out()
        sizes = [len(ts) for ts in docs]
        owner = sparse.csr_matrix(
            (
                np.ones(len(texts), dtype=np.float32),
                (np.repeat(np.arange(len(docs)), sizes), np.arange(len(texts))),
            ),
            shape=(len(docs), len(texts)),
        )
        picked = top_terms(owner @ per_text, terms, self.candidates)
        cents = np.asarray(centroids, dtype=np.float32)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        out: list[list[str]] = []
        for c, columns in enumerate(picked):
            if not len(columns):
                out.append([])
                continue
            contains = per_text[bounds[c] : bounds[c + 1]][:, columns]
            contains.data[:] = 1.0
            words = [str(terms[i]) for i in columns]
            ranked = mmr(
                cents[c : c + 1], member_means(contains, vectors[c]), words, self.top_n, self.diversity
            )
            out.append([term for term, _ in ranked])
        return out

    def phrases(
        self, docs: Sequence[Sequence[str]], centroids: np.ndarray, vectors: Vectors = None, top: int = 5
    ) -> list[list[str]]:
        """Up to ``top`` readable names per cluster, best first (empty where no phrase qualifies).

        The ``phrase_candidates`` most distinctive member phrases of each cluster are scored by cosine
        to the cluster's centroid minus ``phrase_other_weight`` times the cosine to the nearest other
        centroid (a phrase every sibling says names none of them). A phrase's vector is the mean of
        the members saying it (given their ``vectors``), else its embedding."""
        from_members = self._from_members(docs, vectors)
        per_text = [phrase_sets(texts) for texts in docs]
        counted = [(Counter(p for ps in sets for p in ps), forms) for sets, forms in per_text]
        shortlist = distinctive_phrases(
            [counts for counts, _ in counted],
            [len(texts) for texts in docs],
            self.phrase_candidates,
            self.phrase_min_share,
        )
        unique = sorted({p for ps in shortlist for p in ps})
        if not unique:
            return [[] for _ in docs]
        cents = np.asarray(centroids, dtype=np.float32)
        cents = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
        if from_members:
            assert vectors is not None
            order = [
                self._member_order(per_text[c][0], ps, vectors[c], cents, c) for c, ps in enumerate(shortlist)
            ]
            # The encoder settles each cluster's top few (a sub-phrase said by the same members has
            # the same mean; its embedding is further from what the cluster is about).
            head = {c: o[: self.phrase_encoded] for c, o in enumerate(order)}
            wanted = sorted({shortlist[c][i] for c, idx in head.items() for i in idx})
            embedded = dict(zip(wanted, self._embed(wanted), strict=True)) if wanted else {}
        else:
            embedded = dict(zip(unique, self._embed(unique), strict=True))
            order = [list(range(len(ps))) for ps in shortlist]
            head = {c: o for c, o in enumerate(order)}
        out = []
        for c, ps in enumerate(shortlist):
            if not ps:
                out.append([])
                continue
            idx = head[c]
            first = []
            if idx:
                score = self._phrase_scores(np.stack([embedded[ps[i]] for i in idx]), cents, c)
                first = [idx[i] for i in np.argsort(-score, kind="stable")]
            ranked = first + [i for i in order[c] if i not in set(first)]
            written = written_forms(counted[c][1])
            out.append([sentence_case(ps[i], written) for i in ranked[:top]])
        return out

    def _phrase_scores(self, phrase_vectors: np.ndarray, cents: np.ndarray, c: int) -> np.ndarray:
        """Similarity to centroid ``c`` minus ``phrase_other_weight`` x that to the nearest other one."""
        sims = phrase_vectors @ cents.T
        score = sims[:, c]
        if len(cents) > 1:
            score = score - self.phrase_other_weight * np.delete(sims, c, axis=1).max(axis=1)
        return score

    def _member_order(
        self,
        sets: Sequence[set[str]],
        ps: Sequence[str],
        member_vectors: np.ndarray,
        cents: np.ndarray,
        c: int,
    ) -> list[int]:
        """``ps`` best first without the encoder: :meth:`_phrase_scores` of the mean of the vectors of
        the members saying each (not normalised: how central those members are, whatever their
        number) plus ``phrase_length_bonus`` per word (of phrases the same members say, the longer)."""
        if not ps:
            return []
        column = {p: j for j, p in enumerate(ps)}
        pairs = [(i, column[p]) for i, said in enumerate(sets) for p in said if p in column]
        rows, cols = (np.array(x, dtype=np.int64) for x in zip(*pairs, strict=True))
        contains = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(sets), len(ps))
        )
        n = np.maximum(np.asarray(contains.sum(axis=0)).ravel(), 1.0)
        means = np.asarray(contains.T @ normalize(member_vectors)) / n[:, None]
        score = self._phrase_scores(means, cents, c)
        score = score + self.phrase_length_bonus * np.array([len(p.split()) for p in ps])
        return [int(i) for i in np.argsort(-score, kind="stable")]


def member_means(contains: Any, vectors: np.ndarray) -> np.ndarray:
    """Per candidate (a column of the texts x candidates 0/1 matrix ``contains``), the normalised
    mean of the vectors of the texts that contain it."""
    sums = np.asarray(contains.T @ np.asarray(vectors, dtype=np.float32), dtype=np.float32)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


def namer_for(embedder: Embedder, settings: Settings) -> KeyBERTNamer:
    """The namer the settings ask for (keywords kept, how candidates are ranked)."""
    return KeyBERTNamer(
        embedder, top_n=settings.name_keywords, encode_candidates=settings.name_encode_candidates
    )
