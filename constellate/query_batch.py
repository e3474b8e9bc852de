"""Single texts from many threads encoded together: the API's concurrent search queries.

A request thread whose text is still waiting and finds a free lane encodes its own text with the
others waiting (the longest waiting first, up to ``max_batch`` in all) in one call; the others
wait for their vectors. Nobody waits for a batch to fill: a lone query is encoded at once, alone, so
batching only happens when queries queue up anyway. One call of several short texts costs less
CPU per text than one call each (measured in docs/benchmarks.md), which is what a loaded server
is short of.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)  # compared by identity: two callers may send the same text
class _Waiting:
    text: str
    vector: np.ndarray | None = None
    error: BaseException | None = None
    taken: bool = False  # in a batch being encoded
    done: bool = False


class QueryBatcher:
    """Encode one text at a time from any thread, ``lanes`` batch calls at most at once.

    ``encode(texts)`` must return one row per text. When it raises (or returns another number of
    rows), the caller that ran it gets its error and every other caller in that batch a
    ``RuntimeError`` chained to it.
    """

    def __init__(
        self, encode: Callable[[Sequence[str]], np.ndarray], lanes: int = 2, max_batch: int = 8
    ) -> None:
        self.encode = encode
        self.lanes = max(1, lanes)
        self.max_batch = max(1, max_batch)
        self._ready = threading.Condition()
        self._queue: deque[_Waiting] = deque()
        self._running = 0

    def embed_one(self, text: str) -> np.ndarray:
        """The vector of ``text`` (one row)."""
        mine = _Waiting(text)
        batch: list[_Waiting] = []
        with self._ready:
            self._queue.append(mine)
            while not mine.done and (mine.taken or self._running >= self.lanes):
                self._ready.wait()
            if not mine.done:  # a free lane, and this text still waiting: encode it, and others
                self._queue.remove(mine)  # its own text first, then the longest waiting
                batch = [mine] + [
                    self._queue.popleft() for _ in range(min(self.max_batch - 1, len(self._queue)))
                ]
                for waiting in batch:
                    waiting.taken = True
                self._running += 1
        if batch:  # this thread encodes: its own error is raised as it came
            self._run(batch)
            if mine.error is not None:
                raise mine.error
        elif mine.error is not None:
            raise RuntimeError(f"the batch this query was encoded in failed: {mine.error!r}") from mine.error
        assert mine.vector is not None
        return mine.vector

    def _run(self, batch: list[_Waiting]) -> None:
        vectors: np.ndarray | None = None
        error: BaseException | None = None
        try:
            vectors = self.encode([w.text for w in batch])
            if np.ndim(vectors) != 2 or len(vectors) != len(batch):
                raise RuntimeError(f"the encoder returned shape {np.shape(vectors)} for {len(batch)} texts")
        except BaseException as exc:
            error = exc
        finally:  # whatever happened, the lane is freed and every caller of the batch answered
            with self._ready:
                for i, waiting in enumerate(batch):
                    if error is None and vectors is not None:
                        waiting.vector = vectors[i : i + 1]
                    waiting.error = error
                    waiting.done = True
                self._running -= 1
                self._ready.notify_all()
