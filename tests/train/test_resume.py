"""A fit interrupted after some epochs and resumed (``resume: true``, the same run folder) ends where
an uninterrupted fit ends: same losses, validation curve and scores, bit for bit on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clarec.errors import ConfigError
from clarec.models import create
from clarec.models.torch_base import TorchRecommender

from ..models.recommender_mixin import block_dataset
from ..models.test_capabilities import ALPHA, GRAPH, MF, SEQ, TOWER

SHORT = {"epochs": 6, "patience": 50}
CASES = {
    "bpr": MF | SHORT,
    "sgl": GRAPH | SHORT,  # edge dropout drawn from the model's generator
    "byol-cf": GRAPH | SHORT,  # the EMA target network is part of the state
    "sasrec": SEQ | SHORT,  # dropout from the global generator
    "alpharec": ALPHA | SHORT,
    "two-tower": TOWER | SHORT | {"n_negatives": 8, "hard_negatives": 4},  # the miner's own generator
}


class Interrupted(Exception):
    pass


def _stop_after(epoch: int):
    def callback(e: int, metric: float) -> None:
        if e > epoch:  # the epoch after it runs, then the fit is killed before its state is saved
            raise Interrupted

    return callback


def _last_epoch(run_dir) -> int:
    return torch.load(run_dir / "last.pt", weights_only=True)["epoch"]


@pytest.fixture(scope="module")
def data():
    ds = block_dataset()
    return ds, ds.with_interactions(ds.interactions.iloc[::7])


def _model(name: str, run_dir, tiny_model_dir, **extra) -> TorchRecommender:
    params = CASES[name] | {"run_dir": str(run_dir)} | extra
    if name in ("alpharec", "two-tower"):
        params["encoder"] = str(tiny_model_dir)
    return create(name, params)


@pytest.mark.parametrize("name", list(CASES))
def test_a_resumed_fit_ends_where_an_uninterrupted_one_does(name, data, tiny_model_dir, tmp_path):
    train, valid = data
    whole = _model(name, tmp_path / "whole", tiny_model_dir).fit(train, valid)

    cut = _model(name, tmp_path / "cut", tiny_model_dir)
    cut.validation_callback = _stop_after(3)
    with pytest.raises(Interrupted):
        cut.fit(train, valid)
    assert _last_epoch(tmp_path / "cut") == 3

    resumed = _model(name, tmp_path / "cut", tiny_model_dir, resume=True).fit(train, valid)
    assert resumed.history_.epochs == whole.history_.epochs == list(range(1, 7))
    assert resumed.history_.losses == whole.history_.losses
    assert resumed.history_.val_metrics == whole.history_.val_metrics
    assert resumed.history_.best_epoch == whole.history_.best_epoch
    assert resumed.history_.resumed_after == [3] and whole.history_.resumed_after == []
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(resumed.score(users), whole.score(users))
    assert "resumed after epoch 3" in (tmp_path / "cut" / "log.txt").read_text()


def test_a_finished_fit_is_not_redone_and_other_settings_are_refused(data, tiny_model_dir, tmp_path):
    train, valid = data
    first = _model("bpr", tmp_path / "run", tiny_model_dir).fit(train, valid)
    again = _model("bpr", tmp_path / "run", tiny_model_dir, resume=True)
    again.validation_callback = _stop_after(0)  # would raise if any epoch ran
    again.fit(train, valid)
    assert again.history_.losses == first.history_.losses
    np.testing.assert_array_equal(again.score(np.arange(5)), first.score(np.arange(5)))
    with pytest.raises(ConfigError, match="other settings or data"):
        _model("bpr", tmp_path / "run", tiny_model_dir, resume=True, lr=0.01).fit(train, valid)
    with pytest.raises(ConfigError, match="other settings or data"):
        _model("bpr", tmp_path / "run", tiny_model_dir, resume=True).fit(train, None)
    # without resume a new fit starts afresh and the old state goes
    _model("bpr", tmp_path / "run", tiny_model_dir, epochs=2).fit(train, valid)
    assert _last_epoch(tmp_path / "run") == 2


def test_a_setting_at_its_default_is_not_part_of_the_fits_signature():
    """So that a setting added to a model later leaves the run folders made before it resumable."""
    plain = create("sasrec", SEQ)
    explicit = create("sasrec", SEQ | {"filter_mix": 0.0, "eval_history": "masked"})
    assert plain._signature() == explicit._signature() and "eval_history" not in plain._signature()
    assert create("sasrec", SEQ | {"eval_history": "kept"})._signature() != plain._signature()


def test_resume_needs_a_run_folder(data):
    with pytest.raises(ConfigError, match="run_dir"):
        create("bpr", MF | {"resume": True}).fit(data[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["bpr", "sasrec"])
def test_a_resumed_fit_on_the_gpu_ends_where_an_uninterrupted_one_does(name, data, tiny_model_dir, tmp_path):
    """The CUDA generators are saved and restored too (GPU kernels may sum in another order from
    run to run, so the figures are compared within a tolerance)."""
    train, valid = data
    whole = _model(name, tmp_path / "whole", tiny_model_dir, device="cuda").fit(train, valid)
    cut = _model(name, tmp_path / "cut", tiny_model_dir, device="cuda")
    cut.validation_callback = _stop_after(3)
    with pytest.raises(Interrupted):
        cut.fit(train, valid)
    resumed = _model(name, tmp_path / "cut", tiny_model_dir, device="cuda", resume=True).fit(train, valid)
    np.testing.assert_allclose(resumed.history_.losses, whole.history_.losses, rtol=1e-4)
    users = np.arange(train.n_users)
    np.testing.assert_allclose(resumed.score(users), whole.score(users), rtol=1e-3, atol=1e-4)


def test_another_split_of_the_same_shape_is_other_data(data, tiny_model_dir, tmp_path):
    """The Python API's resume reads the data's fingerprint, not only its counts: a state saved on
    one split is refused on another with as many users, items and interactions."""
    train, valid = data
    _model("bpr", tmp_path / "run", tiny_model_dir, epochs=2).fit(train, valid)
    other = train.interactions.copy()
    other["item"] = (other["item"] + 1) % train.n_items  # the same counts, other pairs
    moved = train.with_interactions(other)
    assert (moved.n_users, moved.n_items, moved.n_interactions) == (
        train.n_users,
        train.n_items,
        train.n_interactions,
    )
    assert moved.fingerprint() != train.fingerprint() and train.fingerprint() == train.fingerprint()
    with pytest.raises(ConfigError, match="other settings or data"):
        _model("bpr", tmp_path / "run", tiny_model_dir, epochs=2, resume=True).fit(moved, valid)
    _model("bpr", tmp_path / "run", tiny_model_dir, epochs=2, resume=True).fit(train, valid)
