"""Interaction weights (behaviour weights, a weight column) reach the models that offer ``weighted``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from factories import make_random_dataset

from clarec.data.dataset import Dataset
from clarec.data.filters import weight_behaviors
from clarec.errors import ClarecError
from clarec.models import Recommender, create


def _weighted_dataset() -> Dataset:
    ds = make_random_dataset(n_users=30, n_items=20, per_user=6, seed=4)
    inter = ds.interactions
    behaviours = np.where(np.arange(len(inter)) % 3 == 0, "purchase", "view")
    return ds.with_interactions(inter.assign(behavior=behaviours))


def test_behaviour_weights_reach_popularity_ease_and_itemknn(tmp_path):
    ds = weight_behaviors(_weighted_dataset(), {"view": 1, "purchase": 4})
    x = ds.to_csr(weighted=True).toarray()
    assert set(np.unique(x[x > 0])) == {1.0, 4.0}
    pop = create("popularity", {"weighted": True}).fit(ds)
    np.testing.assert_allclose(pop.score([0])[0], x.sum(axis=0))  # purchases count four times
    np.testing.assert_allclose(create("popularity").fit(ds).score([0])[0], (x > 0).sum(axis=0))
    # EASE on the weighted matrix, by hand: B = I − P diagMat(1/diag P), scores x B
    gram = x.T @ x + 10.0 * np.eye(x.shape[1])
    p = scipy.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    ease = create("ease", {"reg": 10.0, "weighted": True}).fit(ds)
    np.testing.assert_allclose(ease.score(np.arange(5)), x[:5] @ b, rtol=1e-4, atol=1e-5)
    plain = create("ease", {"reg": 10.0}).fit(ds)
    assert not np.allclose(plain.score(np.arange(5)), ease.score(np.arange(5)))
    knn, knn_plain = create("itemknn", {"weighted": True}).fit(ds), create("itemknn").fit(ds)
    assert not np.allclose(knn.similarity.toarray(), knn_plain.similarity.toarray())
    # what a user has seen is still excluded, and a saved model scores the same
    ids, _ = ease.recommend(np.arange(30), k=5)
    assert not any(set(ids[u]) & set(np.flatnonzero(x[u])) for u in range(30))
    ease.save(tmp_path / "ease")
    np.testing.assert_array_equal(Recommender.load(tmp_path / "ease").score([3]), ease.score([3]))


@pytest.mark.parametrize("name", ["popularity", "ease", "itemknn"])
def test_unit_weights_change_nothing(name):
    ds = make_random_dataset(n_users=30, n_items=20, per_user=6, seed=5)
    np.testing.assert_array_equal(
        create(name, {"weighted": True}).fit(ds).score(np.arange(30)),
        create(name).fit(ds).score(np.arange(30)),
    )


@pytest.mark.parametrize("name", ["ease", "itemknn"])
def test_a_weighted_history_scores_as_the_training_user(name):
    ds = weight_behaviors(_weighted_dataset(), {"view": 1, "purchase": 4})
    model = create(name, {"weighted": True}).fit(ds)
    row = model.seen[7]
    np.testing.assert_allclose(
        model.score_histories([row.indices], weights=[row.data])[0], model.score([7])[0], rtol=1e-5, atol=1e-6
    )
    # repeats add up: two purchases of an item weigh 8
    twice = model.score_histories([np.array([3, 3])], weights=[np.array([4.0, 4.0])])[0]
    np.testing.assert_allclose(twice, model.score_histories([np.array([3])], weights=[np.array([8.0])])[0])
    with pytest.raises(ClarecError, match="one number per history item"):
        model.score_histories([np.array([3, 4])], weights=[np.array([1.0])])
    with pytest.raises(ClarecError, match="finite"):
        model.score_histories([np.array([3])], weights=[np.array([np.nan])])
    # a model fitted without weights reads a history as 0/1, as it trained
    plain = create(name).fit(ds)
    np.testing.assert_array_equal(
        plain.score_histories([row.indices], weights=[row.data]), plain.score_histories([row.indices])
    )


def test_a_blend_with_a_weighted_member_is_weighted_and_hands_it_the_history_weights(tmp_path):
    ds = weight_behaviors(_weighted_dataset(), {"view": 1, "purchase": 4})
    members = [{"name": "ease", "params": {"reg": 10.0, "weighted": True}}, {"name": "itemknn"}]
    blend = create("blend", {"members": members, "weights": [0.7, 0.3]}).fit(ds)
    assert blend.weighted and np.array_equal(blend.seen.toarray(), ds.to_csr(weighted=True).toarray())
    users = np.arange(ds.n_users)
    rows = [blend.seen[u] for u in users]
    # a training user's own history with its weights scores as the user (what the evaluator's
    # test input and the server hand a weighted model); without them the weighted member differs
    with_weights = blend.score_histories([r.indices for r in rows], weights=[r.data for r in rows])
    np.testing.assert_allclose(with_weights, blend.score(users), rtol=1e-5, atol=1e-5)
    assert not np.allclose(blend.score_histories([r.indices for r in rows]), blend.score(users), atol=1e-4)
    blend.save(tmp_path / "blend")
    assert Recommender.load(tmp_path / "blend").weighted
    plain = create("blend", {"members": [{"name": "ease"}, {"name": "itemknn"}]}).fit(ds)
    assert not plain.weighted
