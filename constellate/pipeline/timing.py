"""Per-stage seconds of a run, recorded by one helper instead of timing code in every stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str], None]


class Stages:
    """Times named stages and reports each start to ``progress`` (as ``"<name>: <what>"``)."""

    def __init__(self, progress: Progress | None = None, seconds: dict[str, float] | None = None) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = dict(seconds or {})
        self.inner: set[str] = set()  # parts of a stage (e.g. the fit's reduce): not added to the total

    @contextmanager
    def stage(self, name: str, what: str = "") -> Iterator[None]:
        """Time the body as stage ``name`` (seconds add up if a stage runs more than once)."""
        if self.progress is not None:
            self.progress(f"{name}: {what}" if what else name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float, inner: bool = False) -> None:
        """Record ``seconds`` for ``name`` measured elsewhere; ``inner``: part of another stage (e.g. a
        fit's reduce and cluster), shown but not counted twice in the total."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        if inner:
            self.inner.add(name)

    def rounded(self) -> dict[str, float]:
        """The seconds rounded to milliseconds, with ``total`` (the stages, not their parts)."""
        total = sum(v for k, v in self.seconds.items() if k not in self.inner and k != "total")
        return {**{k: round(v, 3) for k, v in self.seconds.items() if k != "total"}, "total": round(total, 3)}
