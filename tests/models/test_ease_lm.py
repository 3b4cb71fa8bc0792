import numpy as np
import pandas as pd
import pytest

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models import create
from clarec.models._lm import item_texts
from clarec.models.ease import EASE
from clarec.models.ease_lm import neighbour_similarity
from clarec.text.encoder import TextEncoder

from .recommender_mixin import RecommenderMixin, TinyBert, block_dataset, block_interactions, block_items


def _ease_lm(encoder, **kw):
    return create("ease-lm", {"encoder": str(encoder), "cache_dir": "none", "reg": 10.0} | kw)


class TestEASELM(TinyBert, RecommenderMixin):
    def _get_model(self):
        return _ease_lm(self.encoder_dir, lm_weight=5.0, neighbors=5)


def test_without_the_prior_it_is_ease(tiny_model_dir):
    data = block_dataset()
    got = _ease_lm(tiny_model_dir, lm_weight=0.0).fit(data).weights
    np.testing.assert_allclose(got, EASE(reg=10.0).fit(data).weights, atol=1e-5)


@pytest.mark.parametrize("center", [False, True])
def test_weights_solve_the_constrained_problem(tiny_model_dir, center):
    data = block_dataset()
    model = _ease_lm(tiny_model_dir, lm_weight=7.0, neighbors=4, center=center).fit(data)
    x = data.to_csr().toarray().astype(np.float64)
    gram = x.T @ x
    vectors = TextEncoder(str(tiny_model_dir), cache_dir=None).encode(item_texts(data.items, None, "ease-lm"))
    if center:
        vectors = vectors - vectors.mean(axis=0)
    prior = neighbour_similarity(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), 4).toarray()
    b = model.weights.astype(np.float64)
    # stationarity of the Lagrangian: (G + (λ + μ)I)B − (G + μS) is zero off the diagonal
    residual = (gram + 17.0 * np.eye(len(b))) @ b - gram - 7.0 * prior
    np.testing.assert_allclose(residual - np.diag(np.diag(residual)), 0.0, atol=1e-4)
    assert np.all(np.diag(b) == 0)
    # an item nobody interacted with (d0) is reached through its text alone: μ/(λ + μ) × its S row
    d0 = data.item_index("d0")
    np.testing.assert_allclose(b[d0], 7.0 / 17.0 * prior[d0], atol=1e-5)
    assert (prior[d0] > 0).any()


def test_neighbour_similarity_keeps_the_most_similar_positive_neighbours():
    v = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    s = neighbour_similarity(v, 2).toarray()
    np.testing.assert_allclose(s[0], [0.0, 0.8, 0.0, 0.0])  # item 2 is orthogonal, item 3 opposite
    assert s[0, 3] == 0.0 and np.all(np.diag(s) == 0) and (s >= 0).all()
    assert (s > 0).sum(axis=1).max() <= 2
    with pytest.raises(ConfigError, match="neighbors"):
        create("ease-lm", {"neighbors": 0})


def _without_d0():
    inter = block_interactions()
    items = block_items()
    kept = items[items["item_id"] != "d0"]
    users = pd.DataFrame({"user_id": sorted(set(inter["user_id"]))})
    return Dataset.from_frame(inter, items=kept, users=users, name="blocks", keep_all_items=True), items


def test_an_added_item_is_reached_from_its_text_as_a_refit_would(tiny_model_dir, tmp_path):
    # before, an item added after training got zero weights: ease-lm ranked it last until a refit
    data, items = _without_d0()
    # no trained item's list is full (20 neighbours), so the new item displaces none: all as a refit
    params = {"lm_weight": 7.0, "neighbors": 20, "center": False}
    model = _ease_lm(tiny_model_dir, **params).fit(data)
    whole = block_dataset()
    refit = _ease_lm(tiny_model_dir, **params).fit(whole)
    assert model.add_items(items.iloc[:0]).tolist() == []  # nothing to add: nothing changes
    (new,) = model.add_items(items[items["item_id"] == "d0"])
    assert new == data.n_items
    order = [whole.item_index(i) for i in [*data.item_ids, "d0"]]
    b, r = model.weights, refit.weights[np.ix_(order, order)]
    # its row (as a history item) and its column (as a candidate) are the refit's
    np.testing.assert_allclose(b[new], r[new], atol=1e-6)
    np.testing.assert_allclose(b[:, new], r[:, new], atol=1e-6)
    np.testing.assert_allclose(b[:new, :new], r[:new, :new], atol=1e-6)  # as nothing was displaced
    col = b[:new, new]
    assert (b[new] > 0).any() and (col > 0).any()
    # a history of the items most like it scores it as the refit does
    history = np.argsort(-col)[:2]
    s = model.score_histories([history])[0]
    assert s[new] > 0
    np.testing.assert_allclose(s, refit.score_histories([[order[h] for h in history]])[0][order], atol=1e-5)
    # saved and loaded, the model adds the next item the same way
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    twin = pd.DataFrame({"item_id": ["d1"], "title": ["ocean whales reef"], "genres": [["Documentary"]]})
    np.testing.assert_array_equal(model.add_items(twin), loaded.add_items(twin))
    np.testing.assert_allclose(model.weights, loaded.weights)
    # two identical texts are each other's nearest neighbour
    assert model.weights[new + 1, new] == model.weights[new + 1].max() > 0
