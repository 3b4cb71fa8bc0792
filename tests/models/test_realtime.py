"""The real-time model API: ``score_histories`` (ad-hoc users, fold-in) and ``add_items`` (new items)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from factories import make_random_dataset

from clarec.errors import ClarecError, UnknownIdError
from clarec.models import create
from clarec.models.base import Recommender

from .recommender_mixin import block_dataset

EXACT = ["popularity", "itemknn", "ease", "tfidf", "lm-content"]


def _params(name: str, encoder: str) -> dict:
    if name == "lm-content":
        return {"encoder": encoder, "cache_dir": "none"}
    if name == "bpr":
        return {"epochs": 60, "embedding_dim": 16, "lr": 0.02, "progress": False, "seed": 1}
    if name == "ease":
        return {"reg": 1.0}
    return {}


@pytest.fixture(scope="module")
def data():
    return block_dataset()


@pytest.fixture(scope="module")
def fitted(data, tiny_model_dir):
    # the two-tower's real-time API is tested with the model (tests/models/test_two_tower.py)
    return {name: create(name, _params(name, str(tiny_model_dir))).fit(data) for name in [*EXACT, "bpr"]}


def _histories(data, users):
    hist = data.user_histories()
    return [hist[u] for u in users]


def test_base_default_raises_a_clear_error(data):
    class Plain(Recommender):
        def _fit(self, train, valid):
            pass

        def score(self, users):
            return np.zeros((len(users), self.n_items), dtype=np.float32)

    model = Plain().fit(data)
    assert not Plain.supports_histories and not Plain.supports_new_items
    with pytest.raises(ClarecError, match="cannot score users from their histories"):
        model.score_histories([np.array([0])])
    with pytest.raises(ClarecError, match="cannot add items"):
        model.add_items(pd.DataFrame({"item_id": ["x"], "title": ["x"]}))


@pytest.mark.parametrize("name", EXACT)
def test_training_users_own_history_gives_their_scores(fitted, data, name):
    model = fitted[name]
    users = np.arange(data.n_users - 1)  # the last user ("zcold") has no history
    got = model.score_histories(_histories(data, users))
    assert got.shape == (len(users), data.n_items) and got.dtype == np.float32
    np.testing.assert_allclose(got, model.score(users), rtol=1e-5, atol=1e-6)


def test_bpr_fold_in_ranks_close_to_the_trained_vectors(fitted, data):
    model = fitted["bpr"]
    users = np.arange(data.n_users - 1)
    folded = model.score_histories(_histories(data, users))
    trained = model.score(users)
    corr = [
        np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1]
        for a, b in zip(folded, trained, strict=True)
    ]
    assert np.mean(corr) > 0.8
    # uA0's missing item a5 comes first among unseen items, as with the trained vector
    u = data.user_index("uA0")
    s = folded[u].copy()
    s[data.to_csr()[u].indices] = -np.inf
    assert int(np.argmax(s)) == data.item_index("a5")


@pytest.mark.parametrize("name", ["itemknn", "ease", "tfidf", "lm-content", "bpr"])
def test_a_new_event_changes_the_scores(fitted, data, name):
    model = fitted[name]
    base = data.user_histories()[data.user_index("uA1")]
    before, after = model.score_histories([base, np.append(base, data.item_index("b0"))])
    assert not np.allclose(before, after)
    # the new event pulls the user towards the romance cluster
    b1 = data.item_index("b1")
    assert after[b1] > before[b1]


def test_popularity_ignores_the_history(fitted, data):
    model = fitted["popularity"]
    a, b = model.score_histories([np.array([0, 1]), np.array([], dtype=np.int64)])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, model.score([0])[0])


@pytest.mark.parametrize("name", [*EXACT, "bpr"])
def test_unknown_item_in_a_history_is_refused(fitted, data, name):
    with pytest.raises(UnknownIdError):
        fitted[name].score_histories([np.array([0, data.n_items])])


def test_empty_history_gets_the_fallback_profile(fitted, data):
    lm = fitted["lm-content"]
    cold = data.user_index("zcold")
    np.testing.assert_allclose(
        lm.score_histories([np.array([], dtype=np.int64)])[0], lm.score([cold])[0], atol=1e-6
    )
    # BPR: the zero vector, so 0 for every item it learned something about, and the items without
    # training interactions (d0) just below
    empty = fitted["bpr"].score_histories([[]])[0]
    trained = np.asarray(data.to_csr().sum(axis=0)).ravel() > 0
    assert not empty[trained].any() and (empty[~trained] == -1.0).all()


NEW = pd.DataFrame(
    {
        "item_id": ["new_space", "new_plain"],
        "title": ["galaxy space alien starship alpha", "ocean whales reef"],
        "genres": [["Sci-Fi", "Adventure"], ["Documentary"]],
    }
)


@pytest.mark.parametrize("name", ["tfidf", "lm-content"])
def test_added_items_are_scored_from_their_text(data, tiny_model_dir, tmp_path, name):
    model = create(name, _params(name, str(tiny_model_dir))).fit(data)
    n = data.n_items
    new = model.add_items(NEW)
    np.testing.assert_array_equal(new, [n, n + 1])
    assert model.n_items == n + 2 and model.seen.shape == (data.n_users, n + 2)
    scores = model.score(np.arange(data.n_users))
    # same text as a0 and d0: the same scores for every user
    np.testing.assert_allclose(scores[:, n], scores[:, data.item_index("a0")], atol=1e-5)
    np.testing.assert_allclose(scores[:, n + 1], scores[:, data.item_index("d0")], atol=1e-5)
    ids, _ = model.recommend([data.user_index("uA0")], k=3)
    assert n in ids[0]  # the new space film is recommended to a space-film user at once
    # a history with the new item moves the profile towards it
    h = model.score_histories([np.array([n])])[0]
    assert int(np.argmax(h)) in (n, data.item_index("a0"))
    # survives save / load, and the loaded model can add more items
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.score([0]), scores[:1], atol=1e-6)
    again = loaded.add_items(NEW.iloc[:1])
    np.testing.assert_array_equal(again, [n + 2])
    np.testing.assert_allclose(loaded.score([0])[0, n + 2], scores[0, n], atol=1e-5)


@pytest.mark.parametrize("name", ["popularity", "itemknn", "ease", "bpr"])
def test_added_items_without_text_enter_with_no_evidence(data, tiny_model_dir, name):
    model = create(name, _params(name, str(tiny_model_dir))).fit(data)
    n = data.n_items
    before = model.score(np.arange(data.n_users))
    new = model.add_items(NEW)
    np.testing.assert_array_equal(new, [n, n + 1])
    after = model.score(np.arange(data.n_users))
    assert after.shape == (data.n_users, n + 2)
    np.testing.assert_allclose(after[:, :n], before, atol=1e-6)
    if name == "bpr":  # nothing learned about them: ranked after every trained item, like d0
        trained = np.asarray(data.to_csr().sum(axis=0)).ravel() > 0
        assert (after[:, n:] < after[:, :n][:, trained].min(axis=1, keepdims=True)).all()
    else:
        np.testing.assert_array_equal(after[:, n:], 0.0)
    # the new items can be in a history (e.g. a user clicked one) without error
    assert model.score_histories([np.array([0, n])]).shape == (1, n + 2)
    assert model.similar_items([n], k=3)[0].shape == (1, 3)


@pytest.mark.parametrize("name", ["tfidf", "lm-content"])
def test_text_models_score_a_profile_text(fitted, data, name):
    model = fitted[name]
    assert type(model).supports_texts
    scores = model.score_texts(["detective murder crime police", "love romance wedding heart"])
    assert scores.shape == (2, data.n_items) and scores.dtype == np.float32
    c_items = [data.item_index(f"c{j}") for j in range(5)]
    b_items = [data.item_index(f"b{j}") for j in range(5)]
    if name == "tfidf":  # shared words: the cluster comes first
        assert set(np.argsort(-scores[0])[:5]) == set(c_items)
        assert set(np.argsort(-scores[1])[:5]) == set(b_items)
    else:  # the tiny random encoder: the text is encoded as given; an item's own text finds it
        text = "Title: love romance wedding heart alpha. Genres: Romance, Drama."
        raw = np.asarray(model._get_encoder().encode([text]))[0]
        got = model.score_texts([text])[0]
        np.testing.assert_allclose(got, model.item_vectors() @ (raw / np.linalg.norm(raw)), atol=1e-5)
        assert int(np.argmax(got)) == data.item_index("b0")


def test_models_without_text_refuse_profile_texts(fitted):
    assert not type(fitted["ease"]).supports_texts
    with pytest.raises(ClarecError, match="cannot score users from a text"):
        fitted["ease"].score_texts(["anything"])


def test_similar_items_of_an_item_without_data_are_none():
    # a just-added item has no co-occurrences: its neighbours were the first k items by index
    ds = make_random_dataset(n_users=30, n_items=20, per_user=6, seed=6)
    for name in ("ease", "itemknn"):
        model = create(name).fit(ds)
        (new,) = model.add_items(pd.DataFrame({"item_id": ["fresh"], "title": ["fresh"]}))
        ids, vals = model.similar_items([new, 0], k=3)
        assert (ids[0] == -1).all() and np.isneginf(vals[0]).all()
        assert (ids[1] >= 0).all() and (vals[1] > 0).all()
