"""Encoder adaptation (SimCSE, supervised SimCSE on collaborative pairs, BYOL) on a tiny random BERT."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from adapt_factories import dataset as _dataset
from adapt_factories import make_encoder
from adapt_factories import split as _split

from clarec.data.dataset import Dataset
from clarec.data.split import Split
from clarec.errors import ConfigError
from clarec.text import adapt as adapt_module
from clarec.text.adapt import AdaptReport, adapt_encoder
from clarec.text.adapt_data import collaborative_pairs, crossing_pairs
from clarec.text.diagnostics import embedding_diagnostics
from clarec.text.encoder import TextEncoder
from clarec.text.templates import item_text


@pytest.fixture(scope="module")
def paired_train() -> Dataset:
    """Items 2k and 2k+1 are always consumed together (8 collaborative pairs), by three users each."""
    return _dataset({f"u{k}-{r}": [2 * k, 2 * k + 1] for k in range(8) for r in range(3)})


@pytest.fixture
def leaky_split() -> Split:
    """Valid and test continue the training histories, so pooling the parts would add pairs."""
    return _split(
        {
            "train": {"a": [0, 1, 2], "b": [3, 4], "c": [5, 6, 5]},
            "valid": {"a": [7], "b": [8, 9], "c": [1, 0]},  # a: (2,7), b: (4,8),(8,9), c: (5,1),(1,0)
            "test": {"a": [10, 11], "b": [12]},  # a: (7,10),(10,11), b: (9,12)
        }
    )


# ---------------------------------------------------------------------------- collaborative pairs
def test_collaborative_pairs_are_consecutive_distinct_and_unordered(leaky_split):
    pairs = collaborative_pairs(leaky_split.train)
    # a: 0-1, 1-2; b: 3-4; c: 5-6 and 6-5 (the same unordered pair once)
    assert pairs.tolist() == [[0, 1], [1, 2], [3, 4], [5, 6]]
    assert pairs.dtype == np.int64


def test_heldout_pairs_exclude_training_pairs(leaky_split):
    train = collaborative_pairs(leaky_split.train)
    # within valid alone: b: 8-9, c: 1-0 (a training pair, so excluded)
    assert collaborative_pairs(leaky_split.valid).tolist() == [[0, 1], [8, 9]]
    assert collaborative_pairs(leaky_split.valid, exclude=train).tolist() == [[8, 9]]


def test_pretraining_uses_training_pairs_only(leaky_split, tiny_model_dir, monkeypatch):
    seen = []
    real = adapt_module.NoDuplicateBatchSampler

    def spy(examples, *args, **kwargs):
        seen.append(np.asarray(examples).copy())
        return real(examples, *args, **kwargs)

    monkeypatch.setattr(adapt_module, "NoDuplicateBatchSampler", spy)
    report = adapt_encoder(
        make_encoder(tiny_model_dir),
        leaky_split.train,
        method="simcse-sup",
        batch_size=4,
        lr=1e-3,
        max_steps=2,
        valid=leaky_split.valid,
        progress=False,
    )
    # every item has its own text, so text ids are item indices
    assert seen[0].tolist() == [[0, 1], [1, 2], [3, 4], [5, 6]]
    assert report.settings["n_train_pairs"] == 4
    assert report.settings["n_heldout_pairs"] == 1  # valid's 8-9; its 0-1 is a training pair


def test_supervised_needs_training_pairs_even_if_valid_has_many(tiny_model_dir):
    split = _split(
        {"train": {"a": [0], "b": [1], "c": [2, 3]}, "valid": {"a": [4, 5, 6, 7]}, "test": {"b": [8, 9]}}
    )
    with pytest.raises(ConfigError, match="at least 2 collaborative pairs in the training split, found 1"):
        adapt_encoder(
            make_encoder(tiny_model_dir), split.train, method="simcse-sup", valid=split.valid, progress=False
        )


# ---------------------------------------------------------------------------- training
def _run(folder: Path, train: Dataset, method: str, seed: int = 1, steps: int = 30, **kw) -> tuple:
    encoder = make_encoder(folder)
    report = adapt_encoder(
        encoder,
        train,
        method=method,
        epochs=100,
        batch_size=8,
        lr=1e-3,
        temperature=0.1,
        max_steps=steps,
        seed=seed,
        progress=False,
        **kw,
    )
    return encoder, report


@pytest.mark.parametrize("method", ["simcse", "simcse-sup", "byol"])
def test_loss_decreases(method, tiny_model_dir, paired_train):
    _, report = _run(tiny_model_dir, paired_train, method, diagnostics=False)
    assert report.steps == 30 and len(report.step_losses) == 30
    first, last = np.mean(report.step_losses[:5]), np.mean(report.step_losses[-5:])
    assert last < 0.6 * first, report.step_losses
    # 16 texts (8 pairs for simcse-sup) in batches of 8: 2 steps (1 for pairs) per epoch
    assert report.epochs == (30 if method == "simcse-sup" else 15)
    assert len(report.epoch_losses) == report.epochs
    assert report.epoch_losses[0] == pytest.approx(np.mean(report.step_losses[: 30 // report.epochs]))


def test_weights_change_and_saved_encoder_reloads_identically(tiny_model_dir, paired_train, tmp_path):
    base = make_encoder(tiny_model_dir)
    encoder, _ = _run(tiny_model_dir, paired_train, "simcse-sup", steps=5, diagnostics=False)
    texts = item_text(paired_train.items, ("title", "genres"))
    before, after = base.encode(texts), encoder.encode(texts)
    assert np.abs(before - after).max() > 1e-3
    changed = [
        name
        for (name, a), (_, b) in zip(
            base.module.named_parameters(), encoder.module.named_parameters(), strict=True
        )
        if not torch.equal(a, b)
    ]
    assert "encoder.layer.0.attention.self.query.weight" in changed
    encoder.save(tmp_path / "enc")
    reloaded = TextEncoder.load(tmp_path / "enc", device="cpu", progress=False)
    np.testing.assert_array_equal(reloaded.encode(texts), after)


def test_byol_keeps_only_the_encoder(tiny_model_dir, paired_train):
    encoder, _ = _run(tiny_model_dir, paired_train, "byol", steps=3, diagnostics=False)
    n_base = sum(p.numel() for p in make_encoder(tiny_model_dir).module.parameters())
    assert sum(p.numel() for p in encoder.module.parameters()) == n_base  # no projector/predictor
    assert not encoder.module.training
    assert encoder.encode(["space war"]).shape == (1, 32)


def test_cache_key_changes_after_training(tiny_model_dir, paired_train):
    encoder = make_encoder(tiny_model_dir)
    key = encoder.identity
    adapt_encoder(encoder, paired_train, method="byol", batch_size=4, max_steps=2, lr=1e-3, progress=False)
    assert encoder.identity != key
    assert make_encoder(tiny_model_dir).identity == key


def test_same_seed_same_result_other_seed_differs(tiny_model_dir, paired_train):
    runs = [
        _run(tiny_model_dir, paired_train, "simcse", seed=s, steps=4, diagnostics=False) for s in (5, 5, 6)
    ]
    (e1, r1), (e2, r2), (_, r3) = runs
    assert r1.step_losses == r2.step_losses
    assert r1.step_losses != r3.step_losses
    np.testing.assert_array_equal(e1.encode(["red king"]), e2.encode(["red king"]))


def test_caller_rng_state_is_left_alone(tiny_model_dir, paired_train):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _run(tiny_model_dir, paired_train, "simcse", steps=2, diagnostics=False)
    assert torch.equal(torch.rand(3), expected)


def test_diagnostics_before_and_after(tiny_model_dir):
    split = _split(
        {
            "train": {f"u{k}": [2 * k, 2 * k + 1] for k in range(6)},
            "valid": {"v1": [12, 13], "v2": [14, 15], "v3": [0, 1]},
            "test": {"t": [3]},
        }
    )
    _, report = _run(tiny_model_dir, split.train, "simcse-sup", steps=5, valid=split.valid)
    for diag in (report.before, report.after):
        assert set(diag) == {"alignment", "uniformity", "pair_cosine", "random_cosine", "cosine_gap"}
        assert diag["cosine_gap"] == pytest.approx(diag["pair_cosine"] - diag["random_cosine"])
        assert diag["alignment"] == pytest.approx(2 - 2 * diag["pair_cosine"], abs=1e-5)
    assert report.settings["n_heldout_pairs"] == 2  # 12-13 and 14-15; 0-1 is a training pair
    assert report.before != report.after
    table = report.table()
    assert table.splitlines()[0] == "| measure | before | after | change |"
    assert "| cosine_gap |" in table
    # leave-one-out: one validation item per user, so valid alone holds no pair; the diagnostics
    # were empty there. The step out of each training history into the validation item is held out.
    loo = _split(
        {
            "train": {f"u{k}": [2 * k, 2 * k + 1] for k in range(6)},
            "valid": {"u0": [12], "u1": [13], "u2": [4]},  # u2: 4-5 is a training pair
            "test": {"u0": [3]},
        }
    )
    assert crossing_pairs(loo.train, loo.valid).tolist() == [[1, 12], [3, 13], [4, 5]]
    assert crossing_pairs(loo.train, loo.valid, exclude=collaborative_pairs(loo.train)).tolist() == [
        [1, 12],
        [3, 13],
    ]
    _, report = _run(tiny_model_dir, loo.train, "simcse-sup", steps=2, valid=loo.valid)
    assert report.settings["n_heldout_pairs"] == 2 and "pair_cosine" in report.before
    _, unsup = _run(tiny_model_dir, split.train, "simcse", steps=2)
    assert set(unsup.before) == {"uniformity", "alignment_views"}


class _FixedEncoder:
    """Stands in for a TextEncoder: fixed vectors per text."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors

    def encode(self, texts):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)

    def eval(self):
        return self


def test_diagnostics_numbers_by_hand():
    enc = _FixedEncoder({"a": [1, 0], "b": [2, 0], "c": [0, 1], "d": [0, 3]})
    pairs = np.array([[0, 1], [2, 3]])
    out = embedding_diagnostics(enc, ["a", "b", "c", "d"], pairs, seed=0)
    # unit vectors a=b=(1,0), c=d=(0,1): squared distances 0 within, 2 across (4 of the 6 pairs)
    assert out["uniformity"] == pytest.approx(math.log((2 + 4 * math.exp(-4)) / 6), rel=1e-5)
    assert out["pair_cosine"] == pytest.approx(1.0) and out["alignment"] == pytest.approx(0.0, abs=1e-6)
    perm = np.random.default_rng(0).permutation(2)  # the documented seeded re-pairing
    assert out["random_cosine"] == pytest.approx(float(np.mean(perm == np.arange(2))))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "simclr"}, "method must be one of"),
        ({"batch_size": 1}, "batch_size must be an integer >= 2"),
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"max_steps": 0}, "max_steps must be an integer >= 1"),
        ({"temperature": -1.0}, "temperature must be a positive number"),
    ],
)
def test_bad_parameters(kwargs, message, tiny_model_dir, paired_train):
    with pytest.raises(ConfigError, match=message):
        adapt_encoder(make_encoder(tiny_model_dir), paired_train, progress=False, **kwargs)


def test_report_round_trips_through_json():
    report = AdaptReport("simcse", steps=1, epochs=1, n_examples=2, step_losses=[0.5], epoch_losses=[0.5])
    assert json.loads(json.dumps(report.to_dict()))["step_losses"] == [0.5]
