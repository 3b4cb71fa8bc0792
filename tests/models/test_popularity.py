import numpy as np
import pandas as pd

from clarec.data.dataset import Dataset
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
