"""Behaviour every recommender must show, checked on a small block-structured data set.

A test class for a model subclasses :class:`RecommenderMixin` and supplies ``_get_model()``
(a fresh, unfitted model). The data: three clusters of items (A: space films, B: romances,
C: crime films) whose users interact only within their cluster, plus an item and a user with no
interactions. User ``uA0`` has seen every A item except ``a5``; ``a5`` is also the most popular
item ``uA0`` has not seen, and it shares its words with the other A items, so every model —
collaborative, popularity or content-based — should recommend it first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clarec.data.dataset import Dataset
from clarec.errors import UnknownIdError
from clarec.models.base import NotFittedError, Recommender

CLUSTERS = {
    "a": ("galaxy space alien starship", ["Sci-Fi", "Adventure"], 6),
    "b": ("love romance wedding heart", ["Romance", "Drama"], 5),
    "c": ("detective murder crime police", ["Crime", "Thriller"], 5),
}
UNIQUE_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


def block_items() -> pd.DataFrame:
    rows = []
    for prefix, (words, genres, n) in CLUSTERS.items():
        for j in range(n):
            rows.append({"item_id": f"{prefix}{j}", "title": f"{words} {UNIQUE_WORDS[j]}", "genres": genres})
    # An item nobody interacted with, with words of its own.
    rows.append({"item_id": "d0", "title": "ocean whales reef", "genres": ["Documentary"]})
    items = pd.DataFrame(rows)
    items["year"] = 1990 + np.arange(len(items))  # numeric: not text, must be ignored by default
    return items


def block_interactions() -> pd.DataFrame:
    """Users interact within their cluster; ``uA0`` lacks ``a5``; everyone else in A has it."""
    rows = []
    t = 0
    for u in range(8):  # cluster A: 8 users, so A items are the most popular
        items = [f"a{j}" for j in range(5)] if u == 0 else [f"a{j}" for j in range(6) if j != u % 5]
        for it in items:
            rows.append((f"uA{u}", it, t))
            t += 1
    for prefix, n_users in (("b", 5), ("c", 5)):
        for u in range(n_users):
            for j in range(5):
                if j != u:  # each user skips one item, so the data are not perfectly uniform
                    rows.append((f"u{prefix.upper()}{u}", f"{prefix}{j}", t))
                    t += 1
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def block_dataset() -> Dataset:
    """The behavioural-test data set (also used by the per-model tests)."""
    inter = block_interactions()
    users = pd.DataFrame({"user_id": sorted(set(inter["user_id"])) + ["zcold"]})
    return Dataset.from_frame(
        inter, items=block_items(), users=users, name="blocks", keep_all_items=True, keep_all_users=True
    )


class TinyBert:
    """Gives a test class the tiny BERT folder (``encoder_dir``) before the mixin's class-scoped
    fixtures run."""

    encoder_dir: str = ""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _tiny_bert(cls, tiny_model_dir):
        cls.encoder_dir = str(tiny_model_dir)


class RecommenderMixin:
    """Shared behavioural tests. Subclasses implement ``_get_model``."""

    #: Models whose training reads the validation set (early stopping) set this to True.
    uses_validation = False

    def _get_model(self) -> Recommender:
        raise NotImplementedError

    def _dataset(self) -> Dataset:
        return block_dataset()

    # Class-scoped so each model is fitted once per test class; pytest wants such fixtures as
    # classmethods, hence the throwaway instance to reach the subclass's hooks.
    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> Dataset:
        return cls()._dataset()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data) -> Recommender:
        return cls()._get_model().fit(data)

    # ------------------------------------------------------------------ fitting and scoring
    def test_fit_returns_self(self, data):
        model = self._get_model()
        assert model.fit(data) is model
        assert (model.n_users, model.n_items) == (data.n_users, data.n_items)

    def test_score_shape_dtype_finite(self, fitted, data):
        users = np.arange(data.n_users)
        s = fitted.score(users)
        assert s.shape == (data.n_users, data.n_items)
        assert s.dtype == np.float32
        assert np.isfinite(s).all()
        np.testing.assert_array_equal(fitted.score(users[3:5]), s[3:5])
        # no users, no rows (tfidf raised scikit-learn's "0 sample(s)" error)
        assert fitted.score(users[:0]).shape == (0, data.n_items)
        if fitted.supports_histories:
            assert fitted.score_histories([]).shape == (0, data.n_items)

    def test_inner_product_queries_reproduce_the_scores(self, fitted, data):
        # the server's fast ranking relies on this contract, bit for bit
        users = np.arange(data.n_users)
        hists = [np.array([data.item_index("a0"), data.item_index("a1")]), np.array([], dtype=np.int64)]
        items = fitted.query_items()
        if items is None:
            assert fitted.user_queries(users) is None and fitted.history_queries(hists) is None
            return
        vectors, t64, norm = items
        assert vectors.dtype == np.float32 and vectors.flags.c_contiguous and t64.dtype == np.float64
        np.testing.assert_array_equal(t64, vectors.T.astype(np.float64))
        assert norm == pytest.approx(np.linalg.norm(vectors.astype(np.float64), axis=1).max())
        q = fitted.user_queries(users)
        np.testing.assert_array_equal(fitted.score(users), (q.astype(np.float64) @ t64).astype(np.float32))
        h = fitted.history_queries(hists)
        if h is not None:
            want = (h.astype(np.float64) @ t64).astype(np.float32)
            np.testing.assert_array_equal(fitted.score_histories(hists), want)

    def test_recommend_excludes_seen_and_sorts(self, fitted, data):
        users = np.arange(data.n_users)
        ids, vals = fitted.recommend(users, k=4)
        assert ids.shape == vals.shape == (data.n_users, 4)
        seen = data.to_csr()
        scores = fitted.score(users)
        for u in users:
            assert not set(ids[u]) & set(seen[u].indices), f"user {u} got a seen item"
            assert len(set(ids[u])) == 4
            assert np.all(np.diff(vals[u]) <= 0)
            np.testing.assert_array_equal(vals[u], scores[u, ids[u]])

    def test_recommend_with_candidates(self, fitted, data):
        # a0 is seen by both users, a5 by uA1 only: seen items stay excluded among the candidates
        cand = data.item_index(["a0", "a5", "b0", "c1", "c2", "d0"])
        users = [data.user_index("uA0"), data.user_index("uA1")]
        ids, vals = fitted.recommend(users, k=2, candidates=cand)
        scores = fitted.score(users)
        seen = data.to_csr()[users].toarray() > 0
        for r in range(len(users)):
            eligible = [i for i in cand if not seen[r, i]]
            assert set(ids[r]) <= set(eligible)
            np.testing.assert_array_equal(vals[r], scores[r, ids[r]])
            rest = [i for i in eligible if i not in ids[r]]
            assert vals[r, 0] >= vals[r, 1] >= scores[r, rest].max()  # the best two of the eligible

    def test_withheld_item_comes_first(self, fitted, data):
        u = data.user_index("uA0")
        ids, _ = fitted.recommend([u], k=3)
        assert ids[0, 0] == data.item_index("a5")

    def test_cold_user_gets_recommendations(self, fitted, data):
        ids, vals = fitted.recommend([data.user_index("zcold")], k=5)
        assert (ids >= 0).all() and np.isfinite(vals).all()
        assert len(set(ids[0])) == 5 and np.all(np.diff(vals[0]) <= 0)  # five items, best first
        np.testing.assert_array_equal(vals[0], fitted.score([data.user_index("zcold")])[0, ids[0]])

    def test_similar_items(self, fitted, data):
        a0 = data.item_index("a0")
        ids, vals = fitted.similar_items([a0, data.item_index("b1")], k=3)
        assert ids.shape == (2, 3)
        assert a0 not in ids[0] and data.item_index("b1") not in ids[1]
        assert data.item_ids[ids[0, 0]].startswith("a"), (
            "the most similar item to a0 should be in its cluster"
        )
        assert np.all(np.diff(vals, axis=1) <= 0)

    def test_validation_is_not_learned_from(self, data):
        if self.uses_validation:
            pytest.skip("this model early-stops on the validation set")
        inter = data.interactions
        # pairs that are not in training, so learning from them would show
        new = inter.iloc[:2].copy()
        new["user"] = [data.user_index("uA0"), data.user_index("uB0")]
        new["item"] = [data.item_index("a5"), data.item_index("b0")]
        new["timestamp"] = inter["timestamp"].max() + 1
        users = np.arange(data.n_users)
        a = self._get_model().fit(data).score(users)
        b = self._get_model().fit(data, valid=data.with_interactions(new)).score(users)
        np.testing.assert_array_equal(a, b)
        trained_on_them = data.with_interactions(pd.concat([inter, new], ignore_index=True))
        assert not np.array_equal(a, self._get_model().fit(trained_on_them).score(users)), (
            "these pairs move this model's scores when trained on, so the check above can fail"
        )

    def test_same_seed_same_model(self, data):
        users = np.arange(data.n_users)
        a = self._get_model().fit(data).score(users)
        b = self._get_model().fit(data).score(users)
        np.testing.assert_array_equal(a, b)

    # ------------------------------------------------------------------ persistence
    def test_save_load_roundtrip(self, fitted, data, tmp_path):
        fitted.save(tmp_path / "m")
        loaded = Recommender.load(tmp_path / "m")
        assert type(loaded) is type(fitted)
        assert loaded.get_params() == fitted.get_params()
        users = np.arange(data.n_users)
        np.testing.assert_array_equal(loaded.score(users), fitted.score(users))
        for a, b in zip(loaded.recommend(users, k=5), fitted.recommend(users, k=5), strict=True):
            np.testing.assert_array_equal(a, b)
        items = np.arange(data.n_items)
        np.testing.assert_array_equal(loaded.item_similarity(items), fitted.item_similarity(items))

    def test_a_damaged_save_gives_one_clear_error(self, fitted, tmp_path):
        import json

        from clarec.errors import ClarecError
        from clarec.models.registry import available_models

        folder = fitted.save(tmp_path / "m")
        meta = json.loads((folder / "model.json").read_text())
        with np.load(folder / "state.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}

        def damaged(meta_change=None, drop=None):
            bad = tmp_path / f"bad-{len(list(tmp_path.iterdir()))}"
            fitted.save(bad)
            (bad / "model.json").write_text(json.dumps(meta | (meta_change or {})))
            if drop is not None:
                np.savez(bad / "state.npz", **{k: v for k, v in arrays.items() if k != drop})
            with pytest.raises(ClarecError, match=str(bad)):
                Recommender.load(bad)

        # another model's name over these arrays (loaded silently as the other model, or a raw error)
        other = next(n for n in available_models() if n != fitted.name)
        damaged({"model": other})
        damaged({"n_items": meta["n_items"] + 5})  # arrays of another size than model.json says
        damaged({"format": 99})  # a newer clarec's folder
        for key in [k for k in arrays if k.startswith(("state.", "sparse."))][:1]:
            damaged(drop=key)  # an array missing (a raw KeyError)
        (tmp_path / "a-file").write_text("x")
        with pytest.raises(ClarecError, match="cannot save a model there"):
            fitted.save(tmp_path / "a-file")

    # ------------------------------------------------------------------ errors
    def test_unknown_indices(self, fitted, data):
        with pytest.raises(UnknownIdError):
            fitted.score([data.n_users])
        with pytest.raises(UnknownIdError):
            fitted.recommend([-1])
        with pytest.raises(UnknownIdError):
            fitted.similar_items([data.n_items])

    def test_not_fitted(self, tmp_path):
        model = self._get_model()
        for call in (
            lambda: model.score([0]),
            lambda: model.recommend([0]),
            lambda: model.similar_items([0]),
            lambda: model.save(tmp_path / "m"),
        ):
            with pytest.raises(NotFittedError):
                call()
