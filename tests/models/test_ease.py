import numpy as np
import pandas as pd
import pytest

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models.ease import EASE

from .recommender_mixin import RecommenderMixin, block_dataset


class TestEASE(RecommenderMixin):
    def _get_model(self):
        return EASE()


def _two_items() -> Dataset:
    # X = [[1, 1], [1, 0], [0, 1]]
    inter = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["x", "y", "x", "y"]})
    return Dataset.from_frame(inter)


def test_closed_form_by_hand():
    # G + λI = [[3, 1], [1, 3]] for λ = 1; P = [[3, -1], [-1, 3]] / 8; B_01 = -P_01 / P_11 = 1/3.
    model = EASE(reg=1.0).fit(_two_items())
    np.testing.assert_allclose(model.weights, [[0.0, 1 / 3], [1 / 3, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(model.score([1]), [[0.0, 1 / 3]], rtol=1e-6)


def test_matches_direct_solution():
    ds = block_dataset()
    model = EASE(reg=5.0).fit(ds)
    x = ds.to_csr().toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 5.0 * np.eye(ds.n_items))
    b = np.eye(ds.n_items) - p / np.diag(p)
    np.testing.assert_allclose(model.weights, b, atol=1e-6)
    assert np.all(np.diag(model.weights) == 0)


def test_too_many_items_is_a_clear_error():
    with pytest.raises(ConfigError, match="max_items=1"):
        EASE(max_items=1).fit(_two_items())


@pytest.mark.parametrize("params", [{"reg": 0.0}, {"reg": -1.0}, {"max_items": 0}])
def test_bad_parameters(params):
    with pytest.raises(ConfigError):
        EASE(**params)
