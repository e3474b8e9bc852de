"""Cluster names: phrases the members say, keywords beside them, distinct across clusters."""

from __future__ import annotations

import re

import numpy as np
import pytest

from constellate import cluster_texts, naming
from constellate.candidates import (
    EDGE_WORDS,
    GREETINGS,
    ctfidf_candidates,
    make_name,
    phrase_counts,
    sentence_case,
    written_forms,
)
from constellate.config import Settings
from constellate.embedding import normalize
from constellate.evaluate import name_similarity
from constellate.naming import KeyBERTNamer
from constellate.pipeline import recluster
from constellate.store import edge_store
from constellate.tickets import Ticket

OPENERS = ["Hi,", "Hello team,", "Please help:", "Can you help?", "Hey there.", ""]
CLOSERS = ["Thanks!", "Thank you so much.", "Please advise asap.", "Regards, Sam", "", "cheers"]
TOPICS = {
    "declined": [
        "my card payment was declined at the supermarket",
        "why was my card payment declined",
        "card payment declined again when I tried to pay",
        "the shop said my card payment was declined",
        "is there a reason my card payment got declined",
    ],
    "refund": [
        "I have still not had my refund, refund not received",
        "my refund not received after two weeks",
        "where is the money, refund not received yet",
        "refund not received for the jacket I returned",
        "the seller says they sent it but refund not received",
    ],
    "password": [
        "I need to reset my password for the app",
        "how do I reset my password",
        "can you reset my password please, I forgot it",
        "reset password link does not arrive",
        "I tried to reset my password three times",
    ],
}


def _tickets(per_topic: int = 40, seed: int = 0) -> dict[str, list[str]]:
    """Ticket texts per topic: a topic sentence wrapped in random greetings and sign-offs."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {}
    for topic, sentences in TOPICS.items():
        out[topic] = [
            " ".join(s for s in (rng.choice(OPENERS), str(rng.choice(sentences)), rng.choice(CLOSERS)) if s)
            for _ in range(per_topic)
        ]
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z0-9'-]*", text.lower())


def _is_subsequence(words: list[str], text: str) -> bool:
    it = iter(_words(text))
    return all(w in it for w in words)


@pytest.fixture
def named(hash_embedder) -> tuple[dict[str, list[str]], list[list[str]], list[str]]:
    docs = _tickets()
    texts = list(docs.values())
    centroids = normalize(np.stack([hash_embedder.embed(t).mean(axis=0) for t in texts]))
    namer = KeyBERTNamer(hash_embedder)
    keywords = namer.keywords(texts, centroids)
    phrases = namer.phrases(texts, centroids)
    taken: set[str] = set()
    names = [make_name(k, taken, p) for k, p in zip(keywords, phrases, strict=True)]
    return docs, phrases, names


def test_a_name_is_a_short_phrase_the_members_say(named) -> None:
    docs, phrases, names = named
    for (topic, texts), name in zip(docs.items(), names, strict=True):
        words = _words(name)
        assert 2 <= len(words) <= 6, name
        assert topic in words, (topic, name)
        assert ";" not in name and name[0].isupper(), name
        # In the members' word order (articles, possessives and "was" may sit between the words).
        assert sum(_is_subsequence(words, t) for t in texts) >= 2, name
    assert names[0].lower() in {"card payment declined", "payment declined"}
    assert names[1].lower() == "refund not received"
    assert all(phrases), phrases


def test_no_boilerplate_or_stop_word_at_the_edges(named) -> None:
    _, phrases, names = named
    for phrase in [*names, *(p for ps in phrases for p in ps)]:
        words = _words(phrase)
        assert words[0] not in EDGE_WORDS and words[-1] not in EDGE_WORDS, phrase
        assert not set(words) & GREETINGS, phrase
        assert "can you" not in phrase.lower() and "thank" not in phrase.lower(), phrase


def test_counted_phrases_skip_greetings_and_keep_particles() -> None:
    said, _ = phrase_counts(
        [
            "Hi, can you help me top up my account? Thanks!",
            "please top up my account, thank you",
            "Hello, how do I turn off notifications",
        ]
    )
    assert said["top up"] == 2 and said["top up account"] == 2
    assert said["turn off notifications"] == 1 and said["turn off"] == 1
    assert not [p for p in said if set(p.split()) & GREETINGS], said
    assert not [p for p in said if p.split()[0] in EDGE_WORDS], said
    assert all(2 <= len(p.split()) <= 5 for p in said)


def test_names_are_distinct_and_fall_back_to_keywords() -> None:
    taken = {"Card declined"}
    assert make_name(["card", "declined"], taken, ["card declined", "Card payment declined"]) == (
        "Card payment declined"
    )
    assert make_name(["card", "declined"], taken, ["CARD DECLINED"]) == "card; declined"
    assert make_name(["card", "declined"], taken, []) == "card; declined (2)"
    assert make_name([], taken) == "unnamed"
    assert len({t.lower() for t in taken}) == len(taken) == 5


def test_sentence_case_keeps_what_the_texts_write_in_capitals() -> None:
    _, forms = phrase_counts(
        ["Where is the ATM near me", "the ATM took my card", "an atm fee", "top up with Apple Pay"]
    )
    assert sentence_case("atm fee", written_forms(forms)) == "ATM fee"
    assert sentence_case("top up with apple pay", written_forms(forms)) == "Top up with Apple Pay"
    assert sentence_case("refund not received") == "Refund not received"


def test_the_run_names_clusters_as_the_in_memory_path_does(settings, hash_embedder) -> None:
    docs = _tickets(60)
    texts = [t for ts in docs.values() for t in ts]
    vectors = hash_embedder.embed(texts)
    local = settings.model_copy(update={"min_cluster_size": 20})
    memory = cluster_texts(texts, settings=local, embedder=hash_embedder, vectors=vectors)
    store = edge_store(local)
    try:
        store.ensure_collections(hash_embedder.dim)
        store.upsert_tickets([Ticket(id=f"n{i}", text=t) for i, t in enumerate(texts)], vectors)
        run = recluster(store, local, namer=KeyBERTNamer(hash_embedder))
        catalogue = [r.payload for r in store.list_clusters(run["run_id"])]
    finally:
        store.close()
    assert run["n_clusters"] == 3
    assert {c["name"] for c in catalogue} == {c["name"] for c in memory.clusters}
    for entry in catalogue:  # keywords kept beside the name; drift still judged on them
        assert entry["keywords"] and entry["name_keywords"] == entry["keywords"]
        assert entry["name"] != make_name(entry["keywords"], set())


def test_name_similarity_scores_names_and_keyword_names_against_gold(hash_embedder) -> None:
    catalogue = [
        {"cluster_id": 0, "name": "Card payment declined", "keywords": ["declined", "shop"]},
        {"cluster_id": 1, "name": "Refund not received", "keywords": ["money", "jacket"]},
        {"cluster_id": 2, "name": "Nobody's cluster", "keywords": ["x"]},  # no members: left out
    ]
    gold = ["card_payment_declined", "card_payment_declined", "other", "refund_not_received"]
    scores = name_similarity(catalogue, gold, [0, 0, 0, 1], hash_embedder)
    assert scores["name_label_similarity"] == pytest.approx(1.0, abs=1e-4)
    assert scores["name_label_similarity_keywords"] < 0.5
    assert name_similarity([], gold, [0, 0, 0, 1], hash_embedder)["name_label_similarity"] is None


@pytest.mark.slow
def test_real_model_names_read_like_a_support_lead_wrote_them(real_embedder) -> None:
    docs = _tickets()
    texts = list(docs.values())
    centroids = normalize(np.stack([real_embedder.embed(t).mean(axis=0) for t in texts]))
    phrases = KeyBERTNamer(real_embedder).phrases(texts, centroids)
    taken: set[str] = set()
    names = [make_name([], taken, p) for p in phrases]
    assert names[0].lower() in {"card payment declined", "payment declined"}, names
    assert names[1].lower() == "refund not received", names
    assert "password" in names[2].lower() and "reset" in names[2].lower(), names


def test_evaluate_reports_both_name_similarities(hash_embedder) -> None:
    from constellate.datasets import LabelledText
    from constellate.evaluate import evaluate

    docs = _tickets(60)
    items = [LabelledText(t, f"{topic}_topic") for topic, ts in docs.items() for t in ts]
    result = evaluate(items, Settings(min_cluster_size=20), hash_embedder, KeyBERTNamer(hash_embedder))
    assert result["clusters"] == 3
    for key in ("name_label_similarity", "name_label_similarity_keywords"):
        assert -1.0 <= result[key] <= 1.0
    assert result["name_seconds"] >= 0.0


def test_ctfidf_candidates_rank_each_clusters_own_terms_and_stop_at_top() -> None:
    texts = _tickets(per_topic=30)
    docs = [" \n ".join(texts[topic]) for topic in TOPICS]
    found = ctfidf_candidates(docs, top=5)
    assert [len(terms) for terms in found] == [5, 5, 5]
    for topic, terms in zip(TOPICS, found, strict=True):
        assert any(topic in term for term in terms[:3]), (topic, terms)
        assert all(len(set(t.split())) == len(t.split()) for t in terms)  # no "refund refund"
    assert len(ctfidf_candidates(docs, top=30)[1]) == 30


class CountingEmbedder:
    """Counts the texts a wrapped embedder is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.asked: list[str] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts):
        self.asked.extend(texts)
        return self.inner.embed(texts)


def test_candidates_are_embedded_once_and_the_cache_stays_bounded(hash_embedder, monkeypatch) -> None:
    texts = _tickets(per_topic=30)
    docs = [texts[topic] for topic in TOPICS]
    centroids = normalize(np.stack([hash_embedder.embed(t).mean(axis=0) for t in docs]))
    counting = CountingEmbedder(hash_embedder)
    namer = KeyBERTNamer(counting)
    keywords, phrases = namer.keywords(docs, centroids), namer.phrases(docs, centroids)
    assert counting.asked and len(counting.asked) == len(set(counting.asked))  # shared, deduplicated
    assert len(counting.asked) <= len(docs) * (namer.candidates + namer.phrase_candidates)
    counting.asked.clear()
    assert (namer.keywords(docs, centroids), namer.phrases(docs, centroids)) == (keywords, phrases)
    assert counting.asked == []  # the same clusters again: every vector from the cache
    monkeypatch.setattr(naming, "EMBED_CACHE", 10)
    namer.keywords(docs, centroids)
    assert len(namer._vectors) == 10


def test_the_cache_evicts_the_least_recently_used_vector(hash_embedder, monkeypatch) -> None:
    """A term asked for by every naming stays cached however many others pass through."""
    monkeypatch.setattr(naming, "EMBED_CACHE", 3)
    counting = CountingEmbedder(hash_embedder)
    namer = KeyBERTNamer(counting)
    namer._embed(["card", "atm", "fee"])
    namer._embed(["card"])  # a hit: "card" is now the most recently used
    namer._embed(["refund"])  # evicts "atm", the least recently used (oldest inserted: "card")
    counting.asked.clear()
    namer._embed(["card", "fee", "refund"])
    assert counting.asked == []
    assert list(namer._vectors) == ["card", "fee", "refund"]


def test_a_cached_vector_evicted_by_another_naming_meanwhile_is_still_returned(
    hash_embedder, monkeypatch
) -> None:
    """Interleaving: naming A finds "card" cached and embeds "fee"; meanwhile naming B (another
    thread, here called from inside A's encoder call) fills the cache and evicts "card"."""
    monkeypatch.setattr(naming, "EMBED_CACHE", 2)

    class Interleaving(CountingEmbedder):
        def embed(self, texts):
            if list(texts) == ["fee"]:
                namer._embed(["refund", "transfer"])  # naming B evicts what A found cached
            return super().embed(texts)

    namer = KeyBERTNamer(Interleaving(hash_embedder))
    namer._embed(["card", "atm"])
    vectors = namer._embed(["card", "fee"])
    np.testing.assert_allclose(vectors, hash_embedder.embed(["card", "fee"]), rtol=1e-5, atol=1e-6)
    assert "card" not in namer._vectors  # it was evicted in between


def _member_vectors(hash_embedder, docs):
    return [normalize(hash_embedder.embed(t)) for t in docs]


def test_from_member_vectors_no_candidate_is_embedded(hash_embedder) -> None:
    texts = _tickets(per_topic=30)
    docs = [texts[topic] for topic in TOPICS]
    vectors = _member_vectors(hash_embedder, docs)
    centroids = normalize(np.stack([v.mean(axis=0) for v in vectors]))
    counting = CountingEmbedder(hash_embedder)
    namer = KeyBERTNamer(counting, phrase_encoded=0)
    keywords = namer.keywords(docs, centroids, vectors)
    phrases = namer.phrases(docs, centroids, vectors)
    assert counting.asked == []
    for topic, kws, said in zip(TOPICS, keywords, phrases, strict=True):
        assert any(topic in k for k in kws), (topic, kws)
        assert said and any(topic in p.lower() for p in said[:2]), (topic, said)
    # The default encodes only each cluster's top few phrases, never a keyword.
    namer = KeyBERTNamer(counting)
    namer.keywords(docs, centroids, vectors)
    assert counting.asked == []
    namer.phrases(docs, centroids, vectors)
    assert 0 < len(counting.asked) <= len(docs) * namer.phrase_encoded
    # encode_candidates keeps the old path: every candidate embedded.
    counting.asked.clear()
    KeyBERTNamer(counting, encode_candidates=True).phrases(docs, centroids, vectors)
    assert len(counting.asked) > len(docs) * namer.phrase_encoded


def test_a_phrase_only_off_topic_members_say_ranks_below_one_central_members_say(hash_embedder) -> None:
    rng = np.random.default_rng(0)
    dim = 16
    centre, other = np.eye(dim)[0], np.eye(dim)[1]
    central = [f"blocked card abroad today {i}" for i in range(10)]
    fringe = [f"lost phone screen yesterday {i}" for i in range(10)]
    docs = [central + fringe, [f"lost phone screen again {i}" for i in range(20)]]
    near = normalize(centre + 0.1 * rng.normal(size=(10, dim)))
    off = normalize(0.45 * centre + other + 0.1 * rng.normal(size=(10, dim)))
    vectors = [np.vstack([near, off]).astype(np.float32), normalize(other + 0.1 * rng.normal(size=(20, dim)))]
    centroids = normalize(np.stack([v.mean(axis=0) for v in vectors]))
    namer = KeyBERTNamer(hash_embedder, phrase_encoded=0, phrase_min_share=0.0)
    said = [p.lower() for p in namer.phrases(docs, centroids, vectors, top=15)[0]]
    assert "blocked card abroad" in said and "lost phone screen" in said, said
    assert said.index("blocked card abroad") < said.index("lost phone screen"), said
    keywords = namer.keywords(docs, centroids, vectors)[0]
    assert keywords[0] in {
        "blocked",
        "card",
        "abroad",
        "blocked card",
        "card abroad",
        "blocked card abroad",
    }, keywords
    # The same texts with the members' vectors swapped rank the other way.
    swapped = [np.vstack([off, near]).astype(np.float32), vectors[1]]
    said = [p.lower() for p in namer.phrases(docs, centroids, swapped, top=15)[0]]
    assert said.index("lost phone screen") < said.index("blocked card abroad"), said


def test_member_vectors_must_match_the_texts(hash_embedder) -> None:
    docs = [["card declined at shop", "card declined again"]]
    with pytest.raises(ValueError):
        KeyBERTNamer(hash_embedder).phrases(docs, np.eye(1, 8, dtype=np.float32), [np.zeros((1, 8))])
