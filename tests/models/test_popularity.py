import numpy as np
import pandas as pd
import pytest

from clarec.data.dataset import Dataset
from clarec.errors import ClarecError
from clarec.models.base import Recommender
from clarec.models.popularity import Popularity

from .recommender_mixin import RecommenderMixin


class TestPopularity(RecommenderMixin):
    def _get_model(self):
        return Popularity()


def test_scores_are_distinct_user_counts():
    # u1 interacts with x twice: it still counts once.
    inter = pd.DataFrame({"user_id": ["u1", "u1", "u1", "u2", "u3"], "item_id": ["x", "x", "y", "x", "z"]})
    ds = Dataset.from_frame(inter)
    model = Popularity().fit(ds)
    np.testing.assert_array_equal(model.score([0, 2]), np.array([[2, 1, 1], [2, 1, 1]], dtype=np.float32))
    ids, vals = model.recommend([2], k=3)  # u3 saw z; x then y; third slot empty
    np.testing.assert_array_equal(ids, [[0, 1, -1]])
    np.testing.assert_array_equal(vals[:, :2], [[2, 1]])


def test_indices_that_are_not_whole_numbers_are_refused_not_cast():
    inter = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["x", "y", "x"]})
    model = Popularity().fit(Dataset.from_frame(inter))
    np.testing.assert_array_equal(model.score(np.array([1.0])), model.score([1]))  # whole floats are fine
    for bad, what in (([1.5], "user"), (["1"], "user"), ([True], "user")):
        with pytest.raises(ClarecError, match=f"{what} indices must be whole numbers"):
            model.score(bad)
    np.testing.assert_array_equal(model.score_histories([[1.0, 0]]), model.score_histories([[1, 0]]))
    with pytest.raises(ClarecError, match="item indices must be whole numbers, got 0.5"):
        model.score_histories([[1, 0.5]])
    with pytest.raises(ClarecError, match="history 1 is not a flat sequence"):
        model.score_histories([[0], [[0, 1], [1, 0]]])
    with pytest.raises(ClarecError, match="history 0 is not a flat sequence"):
        model.score_histories([[[0, 1], [1]]])
    # a flat list is one user's items, not one user per item: refused, with the fix
    for flat in ([1, 0], np.array([1, 0])):
        with pytest.raises(ClarecError, match="got a flat sequence .*wrap one history as \\[history\\]"):
            model.score_histories(flat)
    for k in (0, -3, 2.0, True):
        with pytest.raises(ClarecError, match="k must be a whole number of items"):
            model.recommend([0], k=k)


def test_item_similarity_checks_its_indices():
    from clarec.models import create

    inter = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["x", "y", "x", "z"]})
    model = create("bpr", {"epochs": 1, "embedding_dim": 4}).fit(Dataset.from_frame(inter))
    for bad in (-1, 3):  # -1 read the last item's row
        with pytest.raises(ClarecError, match=f"item index {bad} out of range"):
            model.item_similarity(np.array([bad]))


def test_a_half_written_saved_model_is_refused_in_one_line(tmp_path):
    inter = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["x", "y", "x"]})
    model = Popularity().fit(Dataset.from_frame(inter))
    folder = model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "state.npz"]  # no partial left
    state = (folder / "state.npz").read_bytes()
    (folder / "state.npz").write_bytes(state[: len(state) // 2])
    with pytest.raises(ClarecError, match="not a readable saved clarec model"):
        Recommender.load(folder)
    model.save(folder)  # saving again over it gives a whole model back
    np.testing.assert_array_equal(Recommender.load(folder).score([0, 1]), model.score([0, 1]))
