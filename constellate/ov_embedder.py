"""The encoder on OpenVINO's CPU plugin, in bfloat16 where the CPU computes it natively.

The model is the ONNX export :func:`constellate.embedding.export_onnx` caches under the data dir;
tokenising, the length sort, mean pooling and normalisation are the ONNX path's. On a CPU with
native bf16 (AVX512_BF16 or AMX: ``BF16`` in the plugin's optimisation capabilities) the batch
model runs in bf16 with fp32 accumulation; elsewhere in fp32. Measured on a 2-vCPU AMD EPYC with
AVX512_BF16, 13,083 Banking77 texts, three alternating rounds (docs/benchmarks.md): torch 334
texts/s, ONNX Runtime fp32 359 (1.08x), OpenVINO fp32 413 (1.26x), OpenVINO bf16 762 (2.31x), with
the bf16 vectors at cosine 0.99999 to torch's (min 0.99996; int8 weights gave 0.993 and cost V).
Single texts (search queries) are padded to one of a few lengths and run on a model compiled for
that static shape, one one-thread stream per core; they keep the batch model's precision, so a
stored ticket's own text finds it at the top (600 Banking77 queries one at a time: bf16 5.3-6.0 ms
each, fp32 7.1-7.2 on the dynamic model).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from constellate.embedding import (
    SentenceTransformerEmbedder,
    cpu_threads,
    export_onnx,
    length_batches,
    mean_pool,
    normalize,
)


def query_hints(cores: int) -> dict[str, Any]:
    """The query model's compile hints: one stream of one thread per core. A LATENCY model has one
    stream, and every infer request of a model queues on its streams: with one stream, all of a
    server's concurrent queries were encoded on one core (404 queries/s from 1, 2 or 4 threads;
    two streams: 367, 712, 706/s, docs/benchmarks.md)."""
    return {"NUM_STREAMS": cores, "INFERENCE_NUM_THREADS": cores}


# Queries are padded to one of these lengths and run on a model compiled for that static shape: on the
# dynamic model, every change of input shape between calls cost ~1.5-2 ms (600 Banking77 queries
# one at a time: 5.6 ms each in arrival order, 3.7-4.1 sorted by length; on static models 4.4 ms).
# 94 % of Banking77's 13,072 distinct texts have at most 32 tokens; longer ones run on the dynamic model
# (ANY_LENGTH). A model costs ~60 MB; a server compiles all five before its first request.
QUERY_LENGTHS = (8, 16, 24, 32)
ANY_LENGTH = 0


def native_bf16(core: Any) -> bool:
    """Whether OpenVINO's CPU plugin computes bf16 natively on this CPU."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoEmbedder:
    """all-MiniLM-L6-v2 (or the loaded model) exported to ONNX and run by OpenVINO.

    ``precision``: ``auto`` (bf16 where native, else f32) or ``f32``. Batches run on a
    THROUGHPUT-compiled model, one infer request per stream (two here) kept busy by the calling
    thread, which pools each finished batch while the next runs; one batch call at a time per
    process (a lock). No OpenVINO callbacks (an exception raised in one aborted the process): an
    error is raised in the caller, and the model is compiled afresh after one (requests made on the
    same compiled model after a failed inference gave wrong vectors). Single texts go to the static
    query model of their padded length (:data:`QUERY_LENGTHS`; longer ones to a dynamic one), one
    infer request per thread and model.
    """

    def __init__(self, base: SentenceTransformerEmbedder, cache_dir: Path, precision: str = "auto") -> None:
        import openvino as ov

        self.base = base
        self.batch_size = base.batch_size
        self.tokenizer = base.model[0].tokenizer
        self.max_length = int(getattr(base.model, "max_seq_length", 256) or 256)
        self.path = export_onnx(base, Path(cache_dir), quantize=False)
        self._core = ov.Core()
        self.precision = "bf16" if precision == "auto" and native_bf16(self._core) else "f32"
        self._model = self._core.read_model(str(self.path))
        self.compiled = self._compile({"PERFORMANCE_HINT": "THROUGHPUT"})
        self.inputs = {i.get_any_name() for i in self.compiled.inputs}
        self.streams = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self._requests: list[Any] = []
        self._cores = cpu_threads()
        self.query_lengths = query_lengths(self.max_length)
        self._query_models: dict[int, Any] = {}  # padded length (or ANY_LENGTH) -> its model, made when asked
        self._local = threading.local()
        self._batch_lock = threading.Lock()
        self._query_lock = threading.Lock()

    def _compile(self, hints: dict[str, Any], model: Any = None) -> Any:
        config = {"INFERENCE_PRECISION_HINT": self.precision, "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0, **hints}
        return self._core.compile_model(self._model if model is None else model, "CPU", config)

    @property
    def dim(self) -> int:
        return self.base.dim

    def warm_query(self) -> None:
        """Compile every query model and run one, before a server's first request (a model compiled
        under load, ~0.3 s, held up the queries of its length)."""
        for length in (*self.query_lengths, ANY_LENGTH):
            self.query_model(length)
        self.embed(["warm-up query"])

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode ``texts`` shortest first in batches of ``batch_size`` rows (default the embedder's)."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) == 1:
            return self._embed_one(texts[0])
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batches = length_batches(self.tokenizer, texts, batch_size or self.batch_size, self.max_length)
        with self._batch_lock:
            if not self._requests:
                self._requests = [self.compiled.create_infer_request() for _ in range(self.streams)]
            running: deque[tuple[Any, np.ndarray, np.ndarray]] = deque()
            try:
                for i, (rows, batch) in enumerate(batches):
                    if len(running) == self.streams:
                        self._pool(running.popleft(), out)
                    request = self._requests[i % self.streams]
                    request.start_async({k: batch[k].astype(np.int64) for k in self.inputs})
                    running.append((request, rows, batch["attention_mask"]))
                while running:
                    self._pool(running.popleft(), out)
            except BaseException:
                for request, *_ in running:  # let the others finish before their buffers go
                    with contextlib.suppress(Exception):
                        request.wait()
                # after a failed inference, new requests on the same compiled model gave wrong
                # vectors (OpenVINO 2026.4, THROUGHPUT): the model is compiled afresh
                self._requests = []
                self.compiled = self._compile({"PERFORMANCE_HINT": "THROUGHPUT"})
                raise
        return normalize(out)

    @staticmethod
    def _pool(started: tuple[Any, np.ndarray, np.ndarray], out: np.ndarray) -> None:
        request, rows, mask = started
        request.wait()
        out[rows] = mean_pool(request.get_output_tensor(0).data, mask)

    def _embed_one(self, text: str) -> np.ndarray:
        """One text (a search query) on this thread's request of the static model of its padded
        length; any number of threads at once (OpenVINO queues their requests on its streams)."""
        # the batch path's settings: a fast tokenizer whose padding or truncation changes while
        # another thread encodes with it fails ("Already borrowed")
        tokens = self.tokenizer(
            [text], padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
        )
        size = tokens["input_ids"].shape[1]
        length = next((n for n in self.query_lengths if n >= size), ANY_LENGTH)
        feed = {k: pad_to(tokens[k], length or size) for k in self.inputs}
        model = self.query_model(length)
        requests = self._local.__dict__.setdefault("requests", {})
        if requests.get(length, (None,))[0] is not model:
            requests[length] = (model, model.create_infer_request())
        try:
            hidden = requests[length][1].infer(feed)[0]
        except BaseException:
            del requests[length]  # it holds the model
            with self._query_lock:  # as for batches: the next query runs on a model compiled afresh
                if self._query_models.get(length) is model:
                    del self._query_models[length]
            raise
        return normalize(mean_pool(hidden, feed["attention_mask"]))

    def release_query_models(self) -> None:
        """Forget the compiled query models (~60 MB each): the load's agreement check compiles a
        few, a process that only encodes batches needs none, and a server's warm-up compiles all."""
        with self._query_lock:
            self._query_models.clear()
        self._local = threading.local()  # the requests this thread made on them

    def query_model(self, length: int) -> Any:
        """The query model for texts padded to ``length`` tokens, or (``ANY_LENGTH``) the dynamic
        one for longer texts; compiled when first asked (~0.3 s) unless the warm-up did."""
        model = self._query_models.get(length)  # no lock once made
        if model is not None:
            return model
        with self._query_lock:
            if length not in self._query_models:
                model = self._model.clone()
                if length != ANY_LENGTH:
                    model.reshape({name: [1, length] for name in self.inputs})
                self._query_models[length] = self._compile(query_hints(self._cores), model)
            return self._query_models[length]


def query_lengths(max_length: int) -> tuple[int, ...]:
    """The static lengths queries are padded to: those of :data:`QUERY_LENGTHS` the model takes."""
    return tuple(n for n in QUERY_LENGTHS if n <= max_length)


def pad_to(values: np.ndarray, length: int) -> np.ndarray:
    """One tokenised row (ids, mask or types) padded with zeros to ``length`` columns, as int64."""
    out = np.zeros((1, length), dtype=np.int64)
    out[:, : values.shape[1]] = values
    return out
