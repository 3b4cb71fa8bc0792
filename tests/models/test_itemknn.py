import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models.itemknn import ItemKNN, keep_top_per_row, weight_users

from .recommender_mixin import RecommenderMixin


class TestItemKNN(RecommenderMixin):
    def _get_model(self):
        return ItemKNN()


class TestItemKNNBM25(RecommenderMixin):
    def _get_model(self):
        return ItemKNN(k_neighbors=3, weighting="bm25")


class TestItemKNNTfidf(RecommenderMixin):
    def _get_model(self):
        return ItemKNN(weighting="tfidf", shrink=0.0)


def _small() -> Dataset:
    # items x, y, z; users: u1 {x, y}, u2 {x, y, z}, u3 {x}
    inter = pd.DataFrame(
        {"user_id": ["u1", "u1", "u2", "u2", "u2", "u3"], "item_id": ["x", "y", "x", "y", "z", "x"]}
    )
    return Dataset.from_frame(inter)


def test_shrunk_cosine_by_hand():
    model = ItemKNN(shrink=1.0).fit(_small())
    # |x| = √3, |y| = √2, |z| = 1; x·y = 2, x·z = 1, y·z = 1.
    expected = np.array(
        [
            [0, 2 / (np.sqrt(6) + 1), 1 / (np.sqrt(3) + 1)],
            [2 / (np.sqrt(6) + 1), 0, 1 / (np.sqrt(2) + 1)],
            [1 / (np.sqrt(3) + 1), 1 / (np.sqrt(2) + 1), 0],
        ]
    )
    np.testing.assert_allclose(model.similarity.toarray(), expected, rtol=1e-6)
    # u3 has seen x: scores are x's row.
    np.testing.assert_allclose(model.score([2]), expected[[0]], rtol=1e-6)


def test_keeps_k_neighbors_per_item():
    model = ItemKNN(k_neighbors=1, shrink=0.0).fit(_small())
    s = model.similarity.toarray()
    assert (np.count_nonzero(s, axis=1) == 1).all()
    # x's best neighbour is y (2/√6 > 1/√3); z's is y (1/√2 > 1/√3).
    assert s[0].argmax() == 1 and s[2].argmax() == 1


def test_blocks_give_the_same_similarity():
    ds = _small()
    whole = ItemKNN(k_neighbors=1).fit(ds).similarity.toarray()
    blocked = ItemKNN(k_neighbors=1, block_size=1).fit(ds).similarity.toarray()
    np.testing.assert_array_equal(whole, blocked)


def test_keep_top_per_row_ties_prefer_lower_column():
    m = sp.csr_matrix(np.array([[0.5, 0.5, 0.5, 0.9], [0.0, 0.1, 0.0, 0.0]]))
    np.testing.assert_array_equal(keep_top_per_row(m, 2).toarray(), [[0.5, 0, 0, 0.9], [0, 0.1, 0, 0]])


def test_weightings_by_hand():
    x = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    # idf of user with n items = log((1 + 3) / (1 + n)) + 1
    idf = np.log(4 / np.array([3.0, 2.0])) + 1
    np.testing.assert_allclose(weight_users(x, "tfidf").toarray(), x.toarray() * idf[:, None])
    # bm25: item lengths [2, 1, 0], mean 1; norm = 0.25 + 0.75 * len
    norm = 0.25 + 0.75 * np.array([2.0, 1.0, 0.0])
    expected = x.toarray() * (2.2 / (1.2 * norm + 1))[None, :] * idf[:, None]
    np.testing.assert_allclose(weight_users(x, "bm25").toarray(), expected)


@pytest.mark.parametrize(
    "params", [{"k_neighbors": 0}, {"shrink": -1.0}, {"weighting": "idf"}, {"block_size": 0}]
)
def test_bad_parameters(params):
    with pytest.raises(ConfigError):
        ItemKNN(**params)
