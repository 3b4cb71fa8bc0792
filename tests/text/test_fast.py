"""The fast runtimes of TextEncoder: the same vectors as torch (onnx), close ones (onnx-int8, torch-bf16), the exported
file kept in the cache folder and rebuilt when the weights change, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from clarec.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TEXTS = [
    "Title: Toy Story (1995). Genres: Animation, Comedy.",
    "a much longer text about a film with a long plot summary that goes on and on",
    "short",
    "",
    "Title: Heat (1995). Genres: Action, Crime, Thriller.",
] * 3


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


def test_onnx_gives_torch_vectors_and_keeps_the_export(make_encoder, cache):
    ref = make_encoder().encode(TEXTS)
    enc = make_encoder(runtime="onnx", cache_dir=cache)
    got = enc.encode(TEXTS)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=2e-5)
    # the same identity as torch: the embedding cache is shared, the vectors are the same
    assert enc.identity == make_encoder(cache_dir=cache).identity
    exported = sorted((cache / "onnx").glob("*.onnx"))
    assert [p.name for p in exported] == [f"{enc._model_key()}.onnx"]
    stamp = exported[0].stat().st_mtime_ns
    again = make_encoder(runtime="onnx", cache_dir=cache)
    again.cache_dir = None  # no embedding cache: encode through ONNX again, from the kept file
    again._cache = None
    np.testing.assert_allclose(again._encode_uncached(TEXTS[:5]), ref[:5], atol=2e-5)
    assert exported[0].stat().st_mtime_ns == stamp


def test_int8_vectors_are_close_and_keyed_apart(make_encoder, cache):
    ref = make_encoder().encode(TEXTS)
    enc = make_encoder(runtime="onnx-int8", cache_dir=cache)
    got = enc.encode(TEXTS)
    cosines = (got * ref).sum(axis=1)
    assert cosines.min() > 0.95
    assert not np.allclose(got, ref, atol=1e-5)  # int8 weights really ran
    assert enc.identity != make_encoder(cache_dir=cache).identity  # its own embedding-cache entries
    assert (cache / "onnx" / f"{enc._model_key()}-int8.onnx").is_file()


def test_changed_weights_are_exported_again(make_encoder):
    enc = make_encoder(runtime="onnx")
    before = enc.encode(TEXTS[:2])
    with torch.no_grad():
        for p in enc.parameters():
            p.mul_(1.5)
    enc.mark_weights_changed()
    after = enc.encode(TEXTS[:2])
    assert not np.allclose(before, after, atol=1e-4)
    enc.runtime = "torch"
    np.testing.assert_allclose(after, enc.encode(TEXTS[:2]), atol=2e-5)


def test_bad_runtime_and_missing_packages(make_encoder, monkeypatch):
    with pytest.raises(ConfigError, match="runtime must be one of"):
        make_encoder(runtime="tensorrt")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    enc = make_encoder(runtime="onnx")
    with pytest.raises(ConfigError, match=r"pip install 'clarec\[fast\]'"):
        enc.encode(["a text"])


def test_model_parameter():
    from clarec.models.registry import create

    with pytest.raises(ConfigError, match="encoder_runtime"):
        create("lm-content", {"encoder_runtime": "fast"})
    assert create("two-tower", {"encoder_runtime": "onnx-int8"}).encoder_runtime == "onnx-int8"


def test_bf16_vectors_are_close_keyed_apart_and_fp32(make_encoder, tmp_path):
    ref = make_encoder().encode(TEXTS)
    enc = make_encoder(runtime="torch-bf16", cache_dir=tmp_path)
    got = enc.encode(TEXTS)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # normalised in fp32
    assert (got * ref).sum(axis=1).min() > 0.99
    assert not np.allclose(got, ref, atol=1e-5)  # bfloat16 products really ran
    assert enc.identity != make_encoder(cache_dir=tmp_path).identity  # its own embedding-cache entries
    np.testing.assert_array_equal(make_encoder(runtime="torch-bf16", cache_dir=tmp_path).encode(TEXTS), got)
    # training stays fp32: forward under no autocast gives torch's vectors
    with torch.no_grad():
        np.testing.assert_allclose(enc.eval().forward(enc.tokenize(TEXTS[:2])).numpy(), ref[:2], atol=2e-5)


def test_a_damaged_export_is_one_clear_error(make_encoder, tmp_path):
    from clarec.errors import DataError

    enc = make_encoder(runtime="onnx", cache_dir=tmp_path)
    enc.encode(TEXTS[:2])
    (exported,) = (tmp_path / "onnx").glob("*.onnx")
    exported.write_bytes(exported.read_bytes()[:200])  # cut short outside clarec
    again = make_encoder(runtime="onnx", cache_dir=tmp_path)
    with pytest.raises(DataError, match="not a readable ONNX model.*delete it"):
        again.encode(["a text not in the embedding cache"])
