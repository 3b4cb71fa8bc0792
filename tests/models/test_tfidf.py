import numpy as np
import pandas as pd
import pytest

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models.base import Recommender
from clarec.models.tfidf import TfidfRecommender, item_texts

from .recommender_mixin import RecommenderMixin, block_dataset


class TestTfidf(RecommenderMixin):
    def _get_model(self):
        return TfidfRecommender()


class TestTfidfBigrams(RecommenderMixin):
    def _get_model(self):
        return TfidfRecommender(fields=["title"], ngram_range=(1, 2), sublinear_tf=False, half_life=10.0)


def _catalogue() -> Dataset:
    """u1 watched a space film; a second space film and a text-less item nobody has seen."""
    inter = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["space1", "love1"], "timestamp": [1, 2]})
    items = pd.DataFrame(
        {
            "item_id": ["space1", "love1", "space2", "blank"],
            "title": ["space galaxy", "love story", "galaxy space war", None],
            "genres": [["Sci-Fi"], ["Romance"], ["Sci-Fi"], []],
        }
    )
    return Dataset.from_frame(inter, items=items, keep_all_items=True)


def test_default_fields_are_text_and_list_columns():
    texts, used = item_texts(block_dataset().items)
    assert used == ["title", "genres"]  # not item_id, not the numeric year
    assert texts[0] == "galaxy space alien starship alpha Sci-Fi Adventure"


def test_default_fields_skip_ids_urls_dates_and_copies():
    items = pd.DataFrame(
        {
            "item_id": ["1", "2"],
            "title": ["Toy Story", None],
            "release_date": ["01-Jan-1995", "02-Feb-1996"],
            "imdb_url": ["http://imdb.com/Toy", ""],
            "brand_id": ["b1", "b2"],
            "genres": [["Animation", "Comedy"], []],
            "categories": [["Animation", "Comedy"], []],
            "description": ["", "a quiet film"],
        }
    )
    texts, used = item_texts(items)
    assert used == ["title", "genres", "description"]
    assert texts == ["Toy Story Animation Comedy", "a quiet film"]
    # Named fields are taken as given, copies included.
    assert item_texts(items, ["genres", "categories"])[0][0] == "Animation Comedy Animation Comedy"


def test_cold_item_is_recommended_from_text():
    ds = _catalogue()
    model = TfidfRecommender(stop_words=None).fit(ds)
    ids, vals = model.recommend([ds.user_index("u1")], k=3)
    assert ids[0, 0] == ds.item_index("space2")
    assert vals[0, 0] > 0
    # The item without text has a zero vector and a zero score.
    blank = ds.item_index("blank")
    assert model.item_matrix[blank].nnz == 0
    assert model.score([0])[0, blank] == 0.0


def test_score_is_cosine_of_profile_and_item():
    ds = _catalogue()
    model = TfidfRecommender(stop_words=None).fit(ds)
    x = model.item_matrix.toarray()
    norms = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(
        norms[ds.item_index(["space1", "love1", "space2", "blank"])], [1, 1, 1, 0], atol=1e-6
    )
    # u1's profile is space1's vector, so the scores are cosines with space1.
    np.testing.assert_allclose(
        model.score([ds.user_index("u1")])[0], x @ x[ds.item_index("space1")], rtol=1e-6
    )


def test_recency_decay_weights():
    inter = pd.DataFrame(
        {
            "user_id": ["u", "u", "u"],
            "item_id": ["a", "b", "a"],
            "timestamp": [0, 10, 20],
            "weight": [1.0, 2.0, 1.0],
        }
    )
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["red apple", "green pear"]})
    model = TfidfRecommender(half_life=10.0).fit(Dataset.from_frame(inter, items=items))
    # a: 1 * 0.5^2 + 1 * 0.5^0 = 1.25; b: 2 * 0.5^1 = 1.0
    np.testing.assert_allclose(model.user_weights.toarray(), [[1.25, 1.0]])
    undecayed = TfidfRecommender().fit(Dataset.from_frame(inter, items=items))
    np.testing.assert_allclose(undecayed.user_weights.toarray(), [[2.0, 2.0]])


def test_ngram_range_survives_save_load(tmp_path):
    data = block_dataset()
    model = TfidfRecommender(ngram_range=(1, 2)).fit(data)
    assert any(" " in term for term in model.vectorizer_.get_feature_names_out())  # bigrams in use
    unigrams = TfidfRecommender().fit(data)
    users = np.arange(data.n_users)
    assert not np.array_equal(model.score(users), unigrams.score(users))
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert loaded.ngram_range == (1, 2)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    np.testing.assert_array_equal(loaded.score_texts(["alpha beta"]), model.score_texts(["alpha beta"]))


def test_missing_field_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"no column\(s\) \['plot'\]"):
        TfidfRecommender(fields=["plot"]).fit(block_dataset())


def test_no_text_is_a_clear_error():
    inter = pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})
    with pytest.raises(ConfigError, match="no item text"):
        TfidfRecommender().fit(Dataset.from_frame(inter))


def test_vocabulary_errors_are_clear():
    with pytest.raises(ConfigError, match="cannot build the vocabulary"):
        TfidfRecommender(min_df=100).fit(block_dataset())


@pytest.mark.parametrize("params", [{"ngram_range": (2, 1)}, {"half_life": 0.0}, {"stop_words": "french"}])
def test_bad_parameters(params):
    with pytest.raises(ConfigError):
        TfidfRecommender(**params)
