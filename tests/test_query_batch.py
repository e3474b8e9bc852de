"""Single texts from many threads, encoded together (QueryBatcher)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from constellate.query_batch import QueryBatcher


def vector_of(text: str) -> np.ndarray:
    return np.array([[float(len(text)), float(sum(map(ord, text)))]], dtype=np.float32)


class Recorder:
    """An encoder that records its batches and how many ran at once; the first ``hold`` calls wait
    for ``release`` so that the other callers queue up behind them."""

    def __init__(self, hold: int = 1, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.hold = hold
        self.entered = threading.Semaphore(0)
        self.active = 0
        self.most_active = 0
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.batches.append(list(texts))
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            held = len(self.batches) <= self.hold
        try:
            if held:
                self.entered.release()
                assert self.release.wait(10)
            time.sleep(0.01)  # long enough for a second lane to overlap if it could
            if self.fail_on in texts:
                raise RuntimeError("inference failed")
            return np.vstack([vector_of(t) for t in texts])
        finally:
            with self._lock:
                self.active -= 1


def run_threads(batcher: QueryBatcher, texts: list[str], encoder: Recorder) -> dict[str, object]:
    out: dict[str, object] = {}

    def ask(text: str) -> None:
        try:
            out[text] = batcher.embed_one(text)
        except RuntimeError as exc:
            out[text] = exc

    held = [threading.Thread(target=ask, args=(t,)) for t in texts[: encoder.hold]]
    for t in held:
        t.start()
        assert encoder.entered.acquire(timeout=10)  # encoded alone, and held there
    rest = [threading.Thread(target=ask, args=(t,)) for t in texts[encoder.hold :]]
    for t in rest:
        t.start()
    deadline = time.monotonic() + 10
    while len(batcher._queue) < len(rest) and time.monotonic() < deadline:  # every lane is busy
        time.sleep(0.005)
    encoder.release.set()
    for t in [*held, *rest]:
        t.join(10)
    return out


def test_a_lone_text_is_encoded_at_once_alone() -> None:
    encoder = Recorder()
    encoder.release.set()
    batcher = QueryBatcher(encoder, lanes=2, max_batch=8)
    assert np.array_equal(batcher.embed_one("where is my card"), vector_of("where is my card"))
    assert encoder.batches == [["where is my card"]]


def test_texts_that_queue_up_are_encoded_together_and_each_caller_gets_its_own_row() -> None:
    encoder = Recorder(hold=2)
    batcher = QueryBatcher(encoder, lanes=2, max_batch=4)
    texts = [f"query {i} " + "x" * i for i in range(12)]
    out = run_threads(batcher, texts, encoder)
    for text in texts:
        assert np.array_equal(out[text], vector_of(text)), text
    assert sorted(t for b in encoder.batches for t in b) == sorted(texts)  # each text encoded once
    # two held alone, then the ten that queued behind them in batches of at most four
    assert [len(b) for b in encoder.batches[:2]] == [1, 1]
    assert sorted(len(b) for b in encoder.batches[2:]) == [2, 4, 4]
    assert encoder.most_active == 2  # two lanes ran at once, never more


def test_an_error_reaches_every_caller_of_its_batch_and_the_next_batches_still_run() -> None:
    encoder = Recorder(hold=1, fail_on="bad")
    batcher = QueryBatcher(encoder, lanes=1, max_batch=8)
    texts = ["first", "bad", "good one", "good two"]
    out = run_threads(batcher, texts, encoder)
    assert np.array_equal(out["first"], vector_of("first"))
    failed = next(b for b in encoder.batches if "bad" in b)
    assert set(failed) == {"bad", "good one", "good two"}  # queued together behind the first
    assert all(isinstance(out[t], RuntimeError) for t in failed)
    assert np.array_equal(batcher.embed_one("later"), vector_of("later"))
    with pytest.raises(RuntimeError, match="inference failed"):
        batcher.embed_one("bad")
