"""What members say: the words and phrases names are made of.

c-TF-IDF proposes each cluster's candidate terms (:func:`ctfidf_candidates`); phrase candidates are
2–5-word spans of member texts (:func:`phrase_sets`, :func:`distinctive_phrases`) with articles,
possessives and forms of "be"/"have" dropped, no stop word or boilerplate at either end and no
greeting anywhere; :func:`make_name` turns the ranked ones into a name no other cluster has.
Ranking them against the clusters is :mod:`constellate.naming`'s job.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

# Greetings and politeness: never a topic, never the edge of a name.
_POLITE = frozenset(
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
    ]
)
# Support-ticket boilerplate that says nothing about the topic.
BOILERPLATE = _POLITE | frozenset(
    [
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


# -- phrases ------------------------------------------------------------------------------------
# Words sklearn lists as stop words that name a support topic ("top up", "bill due", "interest rate").
_TOPICAL = frozenset(
    [
        "amount",
        "back",
        "bill",
        "bottom",
        "call",
        "computer",
        "describe",
        "detail",
        "empty",
        "fill",
        "find",
        "fire",
        "front",
        "full",
        "interest",
        "move",
        "name",
        "part",
        "show",
        "side",
        "system",
        "top",
    ]
)
# No phrase starts or ends with one of these.
EDGE_WORDS = (ENGLISH_STOP_WORDS - _TOPICAL) | BOILERPLATE | {"s", "t", "d", "m", "u", "ur", "lot", "bit"}
# Nor ends with one of these ("top" without its "up").
_END_WORDS = EDGE_WORDS | {"top", "back"}
# Particles that may end a phrase after a content word ("top up", "turn off").
_PARTICLES = frozenset({"up", "down", "off", "out"})
# The only edge words allowed inside a phrase ("refund not received", "source of funds").
_INNER_WORDS = frozenset(
    [
        "of",
        "for",
        "not",
        "no",
        "with",
        "on",
        "in",
        "into",
        "from",
        "and",
        "or",
        "after",
        "by",
        "at",
        "up",
        "down",
        "off",
        "out",
    ]
)
# Words that disqualify a phrase wherever they are.
GREETINGS = _POLITE | frozenset(
    [
        "kindly",
        "regards",
        "cheers",
        "sir",
        "madam",
    ]
)
# Dropped before spans are read: "my card has been blocked" says "card blocked".
_DROPPED = re.compile(
    r"\b(?:a|an|the|my|your|our|is|are|was|were|be|been|being|has|have|had)\b\s*", re.IGNORECASE
)
_SEGMENT = re.compile(r"[.,!?;:()\[\]{}\"/|\n]+|\s-\s")  # phrases do not cross punctuation
_CTFIDF_TOKEN = r"(?u)\b[a-zA-Z][\w'-]+\b"  # c-TF-IDF's words
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*")


def phrase_counts(texts: Sequence[str], shortest: int = 2, longest: int = 5) -> tuple[Counter, Counter]:
    """How many of ``texts`` say each candidate phrase (lower-cased, ``shortest``–``longest`` words),
    and how each word is written away from the start of a sentence (for :func:`sentence_case`)."""
    sets, forms = phrase_sets(texts, shortest, longest)
    return Counter(p for said in sets for p in said), forms


def phrase_sets(texts: Sequence[str], shortest: int = 2, longest: int = 5) -> tuple[list[set[str]], Counter]:
    """The candidate phrases each of ``texts`` says (see :func:`phrase_counts`), and the words' forms."""
    out: list[set[str]] = []
    forms: Counter = Counter()
    for text in texts:
        seen: set[str] = set()
        for segment in _SEGMENT.split(_DROPPED.sub("", text.replace("\u2019", "'"))):
            words = _TOKEN.findall(segment)
            for i in range(1, len(words)):
                forms[words[i]] += 1
            if len(words) < shortest:
                continue
            low = [w.lower() for w in words]
            for i, first in enumerate(low):
                if first in EDGE_WORDS or first in GREETINGS or "'" in first:
                    continue
                stops = 0
                for j in range(i + 1, min(len(low), i + longest)):
                    word = low[j]
                    if word in GREETINGS or "'" in word or word in low[i:j]:
                        break
                    if word in EDGE_WORDS:
                        if word not in _INNER_WORDS:
                            break
                        stops += 1
                    if word in _END_WORDS and (word not in _PARTICLES or low[j - 1] in EDGE_WORDS):
                        continue
                    if j - i + 1 >= shortest and 2 * stops <= j - i + 1:
                        seen.add(" ".join(low[i : j + 1]))
        out.append(seen)
    return out, forms


def distinctive_phrases(
    counts: Sequence[Counter], sizes: Sequence[int], top: int = 15, min_share: float = 0.02
) -> list[list[str]]:
    """Per cluster, the ``top`` phrases said by at least 2 members and ``min_share`` of them, ranked by
    share x (share / the phrase's shares summed over all clusters) ** 1.5 (c-TF-IDF's idea)."""
    shares = [
        {p: n / max(size, 1) for p, n in said.items()} for said, size in zip(counts, sizes, strict=True)
    ]
    total: Counter = Counter()
    for share in shares:
        total.update(share)
    out = []
    for said, share in zip(counts, shares, strict=True):
        kept = [p for p, n in said.items() if n >= 2 and share[p] >= min_share]
        kept.sort(key=lambda p: (-share[p] * (share[p] / total[p]) ** 1.5, p))
        out.append(kept[:top])
    return out


def written_forms(forms: Counter) -> dict[str, str]:
    """Each lower-cased word's most frequent spelling in ``forms`` (from :func:`phrase_counts`)."""
    best: dict[str, tuple[int, str]] = {}
    for form, n in forms.items():
        low = form.lower()
        if low not in best or (n, form) > best[low]:
            best[low] = (n, form)
    return {low: form for low, (_, form) in best.items()}


def sentence_case(phrase: str, written: dict[str, str] | None = None) -> str:
    """``phrase`` with its first letter upper-cased and each word as the texts mostly write it
    mid-sentence (``written``, from :func:`written_forms`): "atm fees" -> "ATM fees"."""
    text = " ".join((written or {}).get(word, word) for word in phrase.split())
    return text[:1].upper() + text[1:]


def ctfidf_candidates(docs: Sequence[str], top: int = 20) -> list[list[str]]:
    """Top ``top`` 1–3-gram terms per class document by class-based TF-IDF (BERTopic's c-TF-IDF)."""
    if not docs:
        return []
    try:
        vectorizer = ctfidf_vectorizer()
        counts = vectorizer.fit_transform(docs)
    except ValueError:  # only stop words
        return [[] for _ in docs]
    terms = vectorizer.get_feature_names_out()
    return [[str(terms[i]) for i in row] for row in top_terms(counts, terms, top)]


def ctfidf_vectorizer(**kw: Any) -> CountVectorizer:
    return CountVectorizer(
        ngram_range=(1, 3), stop_words=STOP_WORDS, lowercase=True, token_pattern=_CTFIDF_TOKEN, **kw
    )


def top_terms(counts: Any, terms: np.ndarray, top: int) -> list[np.ndarray]:
    """Per row of the classes x terms ``counts``, the columns of its top ``top`` terms by c-TF-IDF."""
    counts = sparse.csr_matrix(counts)
    tf = counts.multiply(1.0 / np.maximum(counts.sum(axis=1), 1)).tocsr()
    avg_words = counts.sum() / max(counts.shape[0], 1)
    idf = np.log(1.0 + avg_words / np.maximum(np.asarray(counts.sum(axis=0)).ravel(), 1))
    scores = tf.multiply(idf).tocsr()
    out = []
    for row in range(scores.shape[0]):
        start, end = scores.indptr[row], scores.indptr[row + 1]
        picked: list[int] = []
        for i in scores.indices[start:end][np.argsort(-scores.data[start:end])]:
            words = str(terms[i]).split()
            if len(set(words)) == len(words):  # "card card" says nothing more than "card"
                picked.append(int(i))
                if len(picked) == top:
                    break
        out.append(np.array(picked, dtype=np.int64))
    return out


def make_name(keywords: Sequence[str], taken: set[str], phrases: Sequence[str] = (), words: int = 3) -> str:
    """A name distinct (case aside) from the names already ``taken``, and added to them: the first
    of ``phrases`` no cluster has, else the first keywords joined (more of them, or a number, until
    distinct)."""
    used = {t.lower() for t in taken}
    name = next((p for p in phrases if p.lower() not in used), None)
    if name is None:
        if not keywords:
            base = "unnamed"
        else:
            base = "; ".join(keywords[:words])
            extra = list(keywords[words:])
            while base.lower() in used and extra:
                base = f"{base}; {extra.pop(0)}"
        name, n = base, 2
        while name.lower() in used:
            name = f"{base} ({n})"
            n += 1
    taken.add(name)
    return name


def keyword_overlap(a: Sequence[str], b: Sequence[str]) -> float:
    """Jaccard overlap of the words in two keyword lists (for name drift)."""
    wa = {w for k in a for w in k.split()}
    wb = {w for k in b for w in k.split()}
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0
