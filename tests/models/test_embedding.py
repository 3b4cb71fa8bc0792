"""The embedding-model base (clarec.models.embedding): one scoring rule for bpr, the graph models,
two-tower and lm-content, and models saved before the base still load."""

import json

import numpy as np
import pytest

from clarec.errors import ClarecError
from clarec.models import create
from clarec.models.base import Recommender
from clarec.models.embedding import EmbeddingModel

from .recommender_mixin import block_dataset

FAST = {"embedding_dim": 8, "epochs": 3, "batch_size": 16, "seed": 1, "progress": False}


@pytest.fixture(scope="module")
def fitted(tiny_model_dir):
    data = block_dataset()
    lm = {"encoder": str(tiny_model_dir), "cache_dir": "none"}
    tower = lm | {"epochs": 2, "batch_size": 8, "seed": 1, "progress": False}
    models = {
        "bpr": create("bpr", FAST),
        "lightgcn": create("lightgcn", FAST),
        "two-tower": create("two-tower", tower),
        "lm-content": create("lm-content", lm),
    }
    return data, {name: model.fit(data) for name, model in models.items()}


def test_every_embedding_model_scores_float32_of_the_float64_inner_product(fitted):
    data, models = fitted
    users = np.arange(data.n_users)
    for name, model in models.items():
        assert isinstance(model, EmbeddingModel), name
        expected = (model.user_vecs.astype(np.float64) @ model.item_vecs.T.astype(np.float64)).astype(
            np.float32
        )
        scores = model.score(users)
        # items nothing was learned about (bpr: no training interaction) rank below every other item
        unknown = np.zeros(data.n_items, bool) if model.unknown_items_ is None else model.unknown_items_
        np.testing.assert_array_equal(scores[:, ~unknown], expected[:, ~unknown], err_msg=name)
        if unknown.any():
            assert (scores[:, unknown].max(axis=1) < scores[:, ~unknown].min(axis=1)).all(), name
            assert model.query_items() is None, name  # the server must not take the inner-product path
        else:
            assert model.query_items() is not None, name
            np.testing.assert_array_equal(model.user_queries(users), model.user_vecs, err_msg=name)


def _rename_state(folder, names: dict[str, str]) -> None:
    """Rewrite a saved model's arrays under other names (as an older clarec saved them)."""
    with np.load(folder / "state.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    renamed = {}
    for key, value in arrays.items():
        short = key.removeprefix("state.")
        renamed[f"state.{names[short]}" if short in names else key] = value
    np.savez(folder / "state.npz", **renamed)


@pytest.mark.parametrize(
    ("name", "old_names"),
    [
        ("bpr", {"user_vecs": "user_factors", "item_vecs": "item_factors"}),
        ("lm-content", {"user_vecs": "user_profiles", "item_vecs": "item_matrix"}),
    ],
)
def test_a_model_saved_under_the_old_names_loads_and_scores_the_same(fitted, tmp_path, name, old_names):
    data, models = fitted
    folder = models[name].save(tmp_path / name)
    _rename_state(folder, old_names)
    with np.load(folder / "state.npz") as z:
        assert not {f"state.{k}" for k in old_names} & set(z.files)
    loaded = Recommender.load(folder)
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.score(users), models[name].score(users))
    hist = [data.to_csr()[0].indices]
    np.testing.assert_array_equal(loaded.score_histories(hist), models[name].score_histories(hist))


def test_a_model_saved_with_a_parameter_since_renamed_fails_with_a_clear_message(fitted, tmp_path):
    folder = fitted[1]["bpr"].save(tmp_path / "old")
    meta = json.loads((folder / "model.json").read_text())
    meta["params"]["dim"] = meta["params"].pop("embedding_dim")  # as two-tower's size was named before
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ClarecError, match=r"parameter\(s\) \['dim'\].*refit the model"):
        Recommender.load(folder)


def test_a_model_of_ones_own_built_as_the_docs_say_saves_scores_and_is_checked(registry, tmp_path):
    """docs/architecture.md, "How to add a model": an EmbeddingModel saves its vectors; a
    CFEmbeddingRecommender that does not train the alignment refuses ``align``; scores of the wrong
    shape or with NaN are one error in recommend()."""
    from clarec.errors import ConfigError
    from clarec.models.embedding import CFEmbeddingRecommender
    from clarec.models.registry import register

    @register("my-vectors")
    class MyVectors(EmbeddingModel, Recommender):
        def _fit(self, train, valid=None):
            rng = np.random.default_rng(0)
            self.user_vecs = rng.normal(size=(self.n_users, 4)).astype(np.float32)
            self.item_vecs = rng.normal(size=(self.n_items, 4)).astype(np.float32)

    data = block_dataset()
    model = MyVectors().fit(data)
    back = Recommender.load(model.save(tmp_path / "v"))  # it saved no vectors: score() failed
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(back.score(users), model.score(users))

    @register("my-cf")
    class MyCF(CFEmbeddingRecommender):
        def _fit(self, train, valid=None):
            rng = np.random.default_rng(0)
            self._set_vectors(rng.normal(size=(self.n_users, 4)), rng.normal(size=(self.n_items, 4)), valid)

    with pytest.raises(
        ConfigError, match="my-cf: align: this model does not train the language-model alignment"
    ):
        MyCF(align={"weight": 0.1})  # it was accepted and ignored, or failed after training
    assert MyCF().fit(data).score(users).shape == (data.n_users, data.n_items)

    for wrong, message in (
        (lambda s: s[:, :-1], r"scored 2 user\(s\) \d+ items as an array of shape \(2, \d+\); expected"),
        (lambda s: s.T, "as an array of shape"),
        (lambda s: np.where(s > 0, np.nan, s), "returned NaN scores"),
    ):
        model.score = lambda u, wrong=wrong: wrong(EmbeddingModel.score(model, u))
        with pytest.raises(ClarecError, match=message):
            model.recommend(users[:2], k=3)
