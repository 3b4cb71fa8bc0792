import json

import numpy as np
import pandas as pd
import pytest
import torch

from clarec.errors import ConfigError
from clarec.models.base import Recommender
from clarec.models.bpr import BPR, MatrixFactorization
from clarec.train.loop import load_checkpoint
from clarec.train.validation import RankingValidator

from .recommender_mixin import RecommenderMixin, block_dataset


def _bpr(**kw) -> BPR:
    params = {"embedding_dim": 16, "lr": 0.05, "epochs": 40, "batch_size": 32, "seed": 3, "progress": False}
    return BPR(**(params | kw))


class TestBPR(RecommenderMixin):
    uses_validation = True

    def _get_model(self):
        return _bpr()


def _split():
    """Train = block data minus each A user's last interaction; valid = those interactions."""
    ds = block_dataset()
    inter = ds.interactions
    last = inter.groupby("user").tail(1).index
    is_a = inter["user"].isin(ds.user_index([f"uA{u}" for u in range(1, 8)]))
    held = inter.index.isin(last) & is_a
    return ds.with_interactions(inter[~held]), ds.with_interactions(inter[held])


def test_loss_decreases_and_history():
    model = _bpr().fit(block_dataset())
    h = model.history_
    assert h.epochs == list(range(1, 41))
    assert h.losses[-1] < 0.5 * h.losses[0]
    assert h.best_epoch == 40 and h.val_metrics == [None] * 40


def test_different_seeds_differ():
    ds = block_dataset()
    a = _bpr(seed=1).fit(ds).item_vecs
    b = _bpr(seed=2).fit(ds).item_vecs
    assert not np.array_equal(a, b)


def test_early_stopping_restores_best_and_writes_run_dir(tmp_path):
    train, valid = _split()
    model = _bpr(epochs=200, patience=3, run_dir=str(tmp_path / "run")).fit(train, valid)
    h = model.history_
    assert h.stopped_early and len(h.epochs) < 200
    metrics = h.val_metrics
    assert h.best_metric == max(metrics) and h.best_epoch == h.epochs[int(np.argmax(metrics))]
    assert len(h.epochs) - h.best_epoch == 3  # stopped after `patience` validations without improvement
    # The kept factors are the best epoch's: the checkpoint holds exactly them.
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    np.testing.assert_array_equal(state["item.weight"].numpy(), model.item_vecs)
    saved = json.loads((tmp_path / "run" / "history.json").read_text())
    assert saved["best_epoch"] == h.best_epoch
    module = MatrixFactorization(train.n_users, train.n_items, 16, 0.1, torch.Generator().manual_seed(0))
    load_checkpoint(tmp_path / "run" / "best.pt", module)
    np.testing.assert_array_equal(module.user.weight.detach().numpy(), model.user_vecs)


def test_validation_metric_is_ndcg_of_the_held_out_items():
    train, valid = _split()
    model = _bpr(epochs=5, patience=100).fit(train, valid)
    ndcg = RankingValidator(train.to_csr(), valid.to_csr(), k=20)(model.score)
    assert ndcg == pytest.approx(model.history_.val_metrics[model.history_.best_epoch - 1], abs=1e-6)


def test_popularity_negatives_train_too():
    model = _bpr(neg_alpha=0.75, n_negatives=4, epochs=80).fit(block_dataset())
    ds = block_dataset()
    assert model.recommend([ds.user_index("uA0")], k=1)[0][0, 0] == ds.item_index("a5")


@pytest.mark.parametrize(
    "params", [{"embedding_dim": 0}, {"lr": 0.0}, {"reg": -1.0}, {"neg_alpha": -0.5}, {"epochs": 0}]
)
def test_bad_parameters(params):
    with pytest.raises(ConfigError):
        BPR(**params)


def test_items_without_training_interactions_rank_after_every_trained_item(tmp_path):
    ds = block_dataset()
    d0 = ds.item_index("d0")  # in the catalogue, never interacted with
    assert ds.to_csr()[:, d0].nnz == 0
    model = _bpr(epochs=10).fit(ds)
    users = np.arange(ds.n_users)
    s = model.score(users)
    others = np.delete(s, d0, axis=1)
    np.testing.assert_allclose(s[:, d0], others.min(axis=1) - 1.0, rtol=1e-6)
    hist = model.score_histories([np.array([ds.item_index("a0")]), np.array([], dtype=np.int64)])
    assert (hist[0, d0] < np.delete(hist[0], d0)).all()
    # items added without text (no align): ranked last as well, and saved so
    new = model.add_items(pd.DataFrame({"item_id": ["n1"]}))
    s2 = model.score(users)
    assert (s2[:, new[0]] < np.delete(s2, [d0, new[0]], axis=1).min(axis=1)).all()
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(Recommender.load(tmp_path / "m").score(users), s2)
