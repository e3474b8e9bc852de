"""Single texts from many threads, encoded together (QueryBatcher)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

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


def call(fn, *args, timeout: float = 10.0):
    """``fn(*args)`` on a daemon thread: a regression that hangs fails the test instead of CI."""
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(_outcome(fn, *args)), daemon=True)
    thread.start()
    thread.join(timeout)
    assert box, f"{fn} did not return within {timeout} s"
    return box[0]


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:
        return exc


def run_threads(batcher: QueryBatcher, texts: list[str], encoder: Recorder) -> list[object]:
    """Each text asked by a thread of its own, the first ``encoder.hold`` held inside the encoder
    until all the others queue; each thread's vector (or exception), in the order of ``texts``."""
    out: list[object] = [None] * len(texts)

    def ask(i: int) -> None:
        out[i] = _outcome(batcher.embed_one, texts[i])

    threads = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(len(texts))]
    for t in threads[: encoder.hold]:
        t.start()
        assert encoder.entered.acquire(timeout=10)  # encoded alone, and held there
    for t in threads[encoder.hold :]:
        t.start()
    deadline = time.monotonic() + 10
    while len(batcher._queue) < len(texts) - encoder.hold and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(batcher._queue) == len(texts) - encoder.hold  # every lane busy, the rest queued
    encoder.release.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    return out


def test_a_lone_text_is_encoded_at_once_alone() -> None:
    encoder = Recorder()
    encoder.release.set()
    batcher = QueryBatcher(encoder, lanes=2, max_batch=8)
    assert np.array_equal(call(batcher.embed_one, "where is my card"), vector_of("where is my card"))
    assert encoder.batches == [["where is my card"]]


def test_texts_that_queue_up_are_encoded_together_and_each_caller_gets_its_own_row() -> None:
    encoder = Recorder(hold=2)
    batcher = QueryBatcher(encoder, lanes=2, max_batch=4)
    texts = [f"query {i} " + "x" * i for i in range(12)]
    out = run_threads(batcher, texts, encoder)
    for text, got in zip(texts, out, strict=True):
        assert np.array_equal(got, vector_of(text)), text
    assert sorted(t for b in encoder.batches for t in b) == sorted(texts)  # each text encoded once
    # two held alone, then the ten that queued behind them in batches of at most four
    assert [len(b) for b in encoder.batches[:2]] == [1, 1]
    assert sorted(len(b) for b in encoder.batches[2:]) == [2, 4, 4]
    assert encoder.most_active == 2  # two lanes ran at once, never more


def test_callers_sending_the_same_text_at_once_each_get_its_vector() -> None:
    """Waiting entries are told apart by identity: with equal ones, a leader removed an earlier
    caller's entry as its own (that caller then failed with ValueError) and encoded its own twice."""
    from constellate.query_batch import _Waiting

    encoder = Recorder()
    encoder.release.set()
    batcher = QueryBatcher(encoder, lanes=1, max_batch=8)
    earlier = _Waiting("same")  # a caller with the same text, queued first, its thread not woken yet
    with batcher._ready:
        batcher._queue.append(earlier)
    assert np.array_equal(call(batcher.embed_one, "same"), vector_of("same"))
    assert encoder.batches == [["same", "same"]] and not batcher._queue
    assert earlier.done and np.array_equal(earlier.vector, vector_of("same"))


def test_an_error_reaches_every_caller_of_its_batch_and_the_next_batches_still_run() -> None:
    encoder = Recorder(hold=1, fail_on="bad")
    batcher = QueryBatcher(encoder, lanes=1, max_batch=8)
    texts = ["first", "bad", "good one", "good two"]
    out = dict(zip(texts, run_threads(batcher, texts, encoder), strict=True))
    assert np.array_equal(out["first"], vector_of("first"))
    failed = next(b for b in encoder.batches if "bad" in b)
    assert set(failed) == {"bad", "good one", "good two"}  # queued together behind the first
    errors = [out[t] for t in failed]
    assert all(isinstance(e, RuntimeError) for e in errors) and len({id(e) for e in errors}) == 3
    # the caller that encoded gets the encoder's own error; the other two, errors chained to it
    (own,) = [e for e in errors if e.__cause__ is None]
    assert "inference failed" in str(own)
    assert all(e.__cause__ is own for e in errors if e is not own)
    assert np.array_equal(call(batcher.embed_one, "later"), vector_of("later"))
    assert isinstance(call(batcher.embed_one, "bad"), RuntimeError)


def test_an_encoder_returning_the_wrong_number_of_rows_fails_the_batch_and_frees_its_lane() -> None:
    batcher = QueryBatcher(lambda texts: np.zeros((len(texts) + 1, 2), np.float32), lanes=1)
    err = call(batcher.embed_one, "where is my card")
    assert isinstance(err, RuntimeError) and "shape (2, 2) for 1 texts" in str(err)
    batcher.encode = lambda texts: np.vstack([vector_of(t) for t in texts])
    assert np.array_equal(call(batcher.embed_one, "again"), vector_of("again"))
