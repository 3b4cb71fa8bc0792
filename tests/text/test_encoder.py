"""TextEncoder on a tiny random BERT: pooling, order, batching, cache, save/load, malformed input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from clarec.errors import ConfigError, DataError
from clarec.text.encoder import TextEncoder, clean_text

TEXTS = [
    "Title: Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "short",
    "A much longer text about a film with many words in it, so that it pads the batch a lot more.",
    "Fargo",
    "Title: Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War.",
    "x y z",
    "One more sentence of medium length.",
]


class ForwardCounter:
    """Counts forward passes of a module and the texts (rows) they received."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self.rows = 0
        module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self.calls += 1
        self.rows += int(kwargs["input_ids"].shape[0])


def _hand_pooled(enc: TextEncoder, texts: list[str], pooling: str, normalize: bool) -> np.ndarray:
    """Pooling computed from the model's last hidden state, independently of the encoder's batching."""
    batch = enc.tokenizer(
        texts, padding=True, truncation=True, max_length=enc.max_length, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = enc.module(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
    if normalize:
        pooled = pooled / pooled.norm(dim=1, keepdim=True)
    return pooled.numpy()


def test_shape_dtype_and_unit_norm(make_encoder):
    enc = make_encoder()
    v = enc.encode(TEXTS)
    assert enc.dim == 32
    assert v.shape == (len(TEXTS), 32)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert enc.encode([]).shape == (0, 32)


def test_without_normalisation_norms_vary(make_encoder):
    v = make_encoder(normalize=False).encode(TEXTS)
    norms = np.linalg.norm(v, axis=1)
    assert norms.std() > 1e-3
    assert not np.allclose(norms, 1.0)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("normalize", [True, False])
def test_pooling_matches_hand_computation(make_encoder, pooling, normalize):
    enc = make_encoder(pooling=pooling, normalize=normalize, batch_size=3)
    np.testing.assert_allclose(enc.encode(TEXTS), _hand_pooled(enc, TEXTS, pooling, normalize), atol=1e-5)


def test_order_restored_after_length_sorting(make_encoder):
    enc = make_encoder(batch_size=2)
    v = enc.encode(TEXTS)
    singles = np.vstack([enc.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(v, singles, atol=1e-5)
    reverse = enc.encode(TEXTS[::-1])
    np.testing.assert_allclose(reverse[::-1], v, atol=1e-5)
    # Rows are distinct, so matching rows prove the order (not just the set) is right.
    assert np.abs(v[0] - v[1]).max() > 1e-2


def test_batch_size_invariance(make_encoder):
    ref = make_encoder(batch_size=64).encode(TEXTS)
    for bs in (1, 2, 3, 5):
        np.testing.assert_allclose(make_encoder(batch_size=bs).encode(TEXTS), ref, atol=1e-5)


def test_duplicates_encoded_once_and_repeated_in_output(make_encoder):
    enc = make_encoder()
    counter = ForwardCounter(enc.module)
    v = enc.encode(["a", "b", "a", "a"])
    assert counter.rows == 2
    assert enc.last_stats.n_unique == 2 and enc.last_stats.n_encoded == 2
    np.testing.assert_array_equal(v[0], v[2])
    np.testing.assert_array_equal(v[0], v[3])


def test_malformed_inputs_never_crash(make_encoder):
    enc = make_encoder(max_length=16)
    bad = [
        None,
        float("nan"),
        np.float32("nan"),
        pd.NA,
        "",
        "   \t\n  ",
        "!!! ... ??? ---",
        "a\x00b\x07c\x1b",
        b"caf\xe9 \xff\xfe",
        "lone surrogate \ud800 here",
        "word " * 5000,
        12345,
    ]
    v = enc.encode(bad)
    assert v.shape == (len(bad), 32)
    assert np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    # None, NaN, float32 NaN and pd.NA read as the empty text (index 4): one row, shared.
    assert enc.last_stats.n_unique == len(bad) - 4
    for i in range(1, 5):
        np.testing.assert_array_equal(v[i], v[0])
    # Encoded alone (other padding), so equal up to float rounding.
    close = dict(atol=1e-6, rtol=0)
    np.testing.assert_allclose(v[0], enc.encode([""])[0], **close)
    np.testing.assert_allclose(v[7], enc.encode(["a b c "])[0], **close)
    np.testing.assert_allclose(v[8], enc.encode(["caf\ufffd \ufffd\ufffd"])[0], **close)
    np.testing.assert_allclose(v[11], enc.encode(["12345"])[0], **close)
    # Truncated to 16 tokens, so any longer run of the same word gives the same vector.
    np.testing.assert_allclose(v[10], enc.encode(["word " * 40])[0], **close)
    assert np.abs(v[10] - enc.encode(["word " * 3])[0]).max() > 1e-3


def test_clean_text():
    assert clean_text(None) == ""
    assert clean_text(float("nan")) == ""
    assert clean_text(b"caf\xc3\xa9") == "café"
    assert clean_text(b"caf\xe9") == "caf\ufffd"
    assert clean_text("a\x00b\tc\nd") == "a b\tc\nd"
    assert clean_text("x\ud800y") == "x y"
    assert clean_text(3.5) == "3.5"
    assert clean_text("Ünïcode ✓") == "Ünïcode ✓"


def test_bad_arguments_raise_clarec_errors(make_encoder, tmp_path):
    with pytest.raises(ConfigError, match="pooling"):
        make_encoder(pooling="max")
    with pytest.raises(ConfigError, match="max_length"):
        make_encoder(max_length=0)
    with pytest.raises(ConfigError, match="batch_size"):
        make_encoder(batch_size=0)
    with pytest.raises(ConfigError, match="not found"):
        TextEncoder(str(tmp_path / "no" / "such" / "model"), progress=False)
    with pytest.raises(ConfigError, match="cannot load"):
        TextEncoder(str(tmp_path), progress=False)  # a folder without a model
    with pytest.raises(ConfigError, match="unknown device"):
        make_encoder(device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            make_encoder(device="cuda")
    enc = make_encoder()
    with pytest.raises(ConfigError, match="single text"):
        enc.encode("one text")
    with pytest.raises(ConfigError, match="sequence"):
        enc.encode(42)


def test_cache_second_call_encodes_nothing(make_encoder, tmp_path):
    enc = make_encoder(cache_dir=tmp_path / "cache", batch_size=2)
    counter = ForwardCounter(enc.module)
    first = enc.encode(TEXTS)
    assert counter.calls == 4 and counter.rows == len(TEXTS)
    second = enc.encode(TEXTS)
    assert counter.calls == 4  # no forward pass at all
    assert enc.last_stats.n_encoded == 0 and enc.last_stats.n_cached == len(TEXTS)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, make_encoder().encode(TEXTS), atol=1e-6)


def test_cache_partial_encodes_only_missing(make_encoder, tmp_path):
    enc = make_encoder(cache_dir=tmp_path)
    enc.encode(TEXTS[:4])
    counter = ForwardCounter(enc.module)
    v = enc.encode(TEXTS)
    assert counter.rows == len(TEXTS) - 4
    assert enc.last_stats.n_encoded == 3 and enc.last_stats.n_cached == 4
    np.testing.assert_allclose(v, make_encoder().encode(TEXTS), atol=1e-5)


def test_cache_persists_across_instances_and_separates_settings(make_encoder, tmp_path):
    first = make_encoder(cache_dir=tmp_path).encode(TEXTS)
    again = make_encoder(cache_dir=tmp_path)
    counter = ForwardCounter(again.module)
    np.testing.assert_array_equal(again.encode(TEXTS), first)
    assert counter.calls == 0
    cls = make_encoder(cache_dir=tmp_path, pooling="cls")
    assert cls.identity != again.identity
    counter = ForwardCounter(cls.module)
    cls.encode(TEXTS)
    assert counter.rows == len(TEXTS)
    for kwargs in ({"max_length": 8}, {"normalize": False}):
        assert make_encoder(cache_dir=tmp_path, **kwargs).identity != again.identity
    assert len(list(tmp_path.glob("*.sqlite"))) == 2


def test_changed_weights_change_the_cache_key(make_encoder, tmp_path):
    enc = make_encoder(cache_dir=tmp_path)
    before = enc.encode(TEXTS)
    key = enc.identity
    optimizer = torch.optim.SGD(enc.parameters(), lr=0.5)
    loss = enc.embed_batch(TEXTS, train=True, normalize=False).pow(2).sum()
    loss.backward()
    optimizer.step()
    after = enc.encode(TEXTS)
    assert enc.identity != key
    assert enc.last_stats.n_encoded == len(TEXTS)
    assert np.abs(after - before).max() > 1e-3


@pytest.mark.parametrize("through", ["forward", "pooled_module"])
def test_training_through_forward_or_the_pooled_module_is_seen_by_encode(make_encoder, tmp_path, through):
    # only embed_batch marked the weights as changed: encode() read the vectors from before training
    enc = make_encoder(cache_dir=tmp_path)
    before = enc.encode(TEXTS)
    key = enc.identity
    optimizer = torch.optim.SGD(enc.parameters(), lr=0.5)
    enc.train()
    batch = enc.tokenize(TEXTS)
    if through == "forward":
        out = enc.forward(batch, normalize=False)
    else:
        out = enc.pooled_module()(batch["input_ids"], batch["attention_mask"])
    out.pow(2).sum().backward()
    optimizer.step()
    after = enc.encode(TEXTS)
    assert enc.identity != key and enc.last_stats.n_encoded == len(TEXTS)
    with torch.no_grad():
        enc.eval()
        want = enc.forward(enc.tokenize(TEXTS)).numpy()
    np.testing.assert_allclose(after, want, atol=1e-5)
    assert np.abs(after - before).max() > 1e-3
    again = enc.encode(TEXTS)  # nothing changed since: read back from the cache
    assert enc.last_stats.n_encoded == 0 and np.array_equal(again, after)


def test_embed_batch_gives_gradients_and_dropout_views(make_encoder):
    enc = make_encoder()
    a = enc.embed_batch(TEXTS, train=True)
    b = enc.embed_batch(TEXTS, train=True)
    assert a.requires_grad and a.shape == (len(TEXTS), 32)
    assert (a - b).abs().max().item() > 1e-4  # dropout: two views of the same text
    a.sum().backward()
    assert enc.module.embeddings.word_embeddings.weight.grad is not None
    evaluated = enc.embed_batch(TEXTS, train=False)
    np.testing.assert_allclose(evaluated.detach().numpy(), enc.encode(TEXTS), atol=1e-5)
    assert not enc.module.training  # encode puts the module back in eval mode


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_tokenize_and_forward_are_the_differentiable_encode(make_encoder, pooling):
    enc = make_encoder(pooling=pooling, max_length=12)
    batch = enc.tokenize(TEXTS + [None, "a\x00b"])
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].shape[1] <= 12
    assert batch["attention_mask"].sum(1).tolist()[:2] == [12, 3]  # truncated; "short" = [CLS] short [SEP]
    enc.eval()
    vectors = enc.forward(batch)
    assert vectors.requires_grad and vectors.shape == (len(TEXTS) + 2, 32)
    # the same cleaning, truncation, padding-free pooling and normalisation as encode()
    np.testing.assert_allclose(vectors.detach().numpy(), enc.encode(TEXTS + [None, "a\x00b"]), atol=1e-5)
    raw = enc.forward(batch, normalize=False)
    np.testing.assert_allclose(
        torch.nn.functional.normalize(raw, dim=-1).detach().numpy(), vectors.detach().numpy(), atol=1e-6
    )
    vectors.sum().backward()
    assert enc.module.embeddings.word_embeddings.weight.grad is not None
    empty = enc.tokenize([])
    assert empty["input_ids"].shape == (0, 0) and empty["attention_mask"].shape == (0, 0)


def test_train_and_eval_switch_dropout(make_encoder):
    enc = make_encoder()
    batch = enc.tokenize(TEXTS)
    assert enc.train() is enc and enc.module.training
    assert (enc.forward(batch) - enc.forward(batch)).abs().max().item() > 1e-4  # dropout views
    assert enc.eval() is enc and not enc.module.training
    torch.testing.assert_close(enc.forward(batch), enc.forward(batch), rtol=0, atol=0)


def test_pooled_module_shares_weights_and_copies_without_the_encoder(make_encoder):
    import copy

    enc = make_encoder(normalize=False)
    module = enc.pooled_module()
    assert isinstance(module, torch.nn.Module)
    assert all(a is b for a, b in zip(module.parameters(), enc.module.parameters(), strict=True))
    batch = enc.tokenize(TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(module(**batch), enc.forward(batch), rtol=0, atol=0)
    twin = copy.deepcopy(module)  # what BYOL does to make its target: weights only
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in enc.module.parameters())
    assert all(a is not b for a, b in zip(twin.parameters(), module.parameters(), strict=True))


def test_save_load_roundtrip(make_encoder, tmp_path):
    enc = make_encoder(pooling="cls", max_length=24, normalize=False)
    ref = enc.encode(TEXTS)
    enc.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").is_file()
    loaded = TextEncoder.load(tmp_path / "saved", device="cpu", progress=False)
    assert (loaded.pooling, loaded.max_length, loaded.normalize) == ("cls", 24, False)
    np.testing.assert_array_equal(loaded.encode(TEXTS), ref)


def test_load_rejects_folders_that_are_not_saved_encoders(tiny_model_dir, tmp_path):
    with pytest.raises(DataError, match="clarec_encoder.json missing"):
        TextEncoder.load(tiny_model_dir)
    (tmp_path / "clarec_encoder.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read encoder settings"):
        TextEncoder.load(tmp_path)


def test_matches_sentence_transformers_on_minilm(minilm_path):  # ~15 s: the one parity check
    st = pytest.importorskip("sentence_transformers")
    texts = TEXTS + ["", "The Godfather (1972). Genres: Crime, Drama.", "ünïcödé tèxt"]
    enc = TextEncoder(device="cpu", progress=False)  # the default model is the bundled MiniLM
    assert Path(enc.model_name_or_path) == minilm_path
    ours = enc.encode(texts)
    theirs = st.SentenceTransformer(str(minilm_path), device="cpu").encode(texts, convert_to_numpy=True)
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    cosine = (ours * theirs).sum(axis=1)
    assert ours.shape == (len(texts), 384)
    assert cosine.min() > 0.9999


def test_weights_replaced_without_an_in_place_step_are_seen_by_encode(make_encoder, tmp_path):
    """New tensors in place of the weights (load_state_dict(assign=True)) or a replaced .data do not
    move the version counters; the weights' storage tells."""
    enc = make_encoder(cache_dir=tmp_path)
    before = enc.encode(TEXTS)
    state = {k: v * 1.5 for k, v in enc.module.state_dict().items()}
    enc.module.load_state_dict(state, assign=True)
    after = enc.encode(TEXTS)
    assert enc.last_stats.n_encoded == len(TEXTS) and np.abs(after - before).max() > 1e-4
    weight = next(enc.module.parameters())
    weight.data = weight.data * 0.5
    again = enc.encode(TEXTS)
    assert enc.last_stats.n_encoded == len(TEXTS) and np.abs(again - after).max() > 1e-4
