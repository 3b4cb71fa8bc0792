import numpy as np
import pandas as pd
import pytest

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models import create
from clarec.models._lm import choose_fields, default_cache_dir, recent_positions, resolve_cache_dir
from clarec.models.lm_content import LMContentRecommender, recency_weights
from clarec.text.templates import item_text

from .recommender_mixin import RecommenderMixin, TinyBert, block_dataset


class TestLMContent(TinyBert, RecommenderMixin):
    def _get_model(self):
        return LMContentRecommender(encoder=self.encoder_dir, cache_dir="none")


class TestLMContentRecencyDot(TinyBert, RecommenderMixin):
    def _get_model(self):
        return LMContentRecommender(
            fields=["title"], encoder=self.encoder_dir, cache_dir="none", half_life=3.0, similarity="dot"
        )


def test_vectors_are_the_encoder_vectors_and_profiles_their_mean(tiny_model_dir):
    from clarec.text.encoder import TextEncoder

    data = block_dataset()
    model = LMContentRecommender(encoder=str(tiny_model_dir), cache_dir="none").fit(data)
    texts = item_text(data.items, ["title", "genres"])  # categories absent, year is not a text field
    assert texts[0] == "Title: galaxy space alien starship alpha. Genres: Sci-Fi, Adventure."
    enc = TextEncoder(str(tiny_model_dir), device="cpu", progress=False).encode(texts)
    np.testing.assert_allclose(
        model.item_vectors(), enc / np.linalg.norm(enc, axis=1, keepdims=True), atol=1e-6
    )
    u = data.user_index("uB1")
    hist = data.to_csr()[u].indices
    mean = model.item_vectors()[hist].mean(axis=0)
    np.testing.assert_allclose(model.user_vecs[u], mean / np.linalg.norm(mean), atol=1e-6)


class TestLMContentCentered(TinyBert, RecommenderMixin):
    def _get_model(self):
        return LMContentRecommender(encoder=self.encoder_dir, cache_dir="none", center=True)


def test_centered_vectors_are_the_encoder_vectors_less_their_mean(tiny_model_dir, tmp_path):
    from clarec.models.base import Recommender
    from clarec.text.encoder import TextEncoder

    data = block_dataset()
    model = LMContentRecommender(encoder=str(tiny_model_dir), cache_dir="none", center=True).fit(data)
    enc = TextEncoder(str(tiny_model_dir), device="cpu", progress=False).encode(
        item_text(data.items, ["title", "genres"])
    )
    centered = enc - enc.mean(axis=0)
    np.testing.assert_allclose(
        model.item_vectors(), centered / np.linalg.norm(centered, axis=1, keepdims=True), atol=1e-5
    )
    # an item added later, and a text query, are centred on the same (training) mean
    (new,) = model.add_items(data.items.iloc[[2]].assign(item_id="again"))
    np.testing.assert_allclose(model.item_vecs[new], model.item_vecs[2], atol=1e-6)
    text = item_text(data.items.iloc[[2]], ["title", "genres"])
    assert int(np.argmax(model.score_texts(text)[0, :new])) == 2
    # rows with none of the fields it reads ('Title' for 'title') were all scored as the empty text
    with pytest.raises(
        ConfigError, match=r"the new items have none of the fields the model reads \['title', 'genres'\]"
    ):
        model.add_items(pd.DataFrame({"item_id": ["x"], "Title": ["Toy Story"], "Genre": ["Comedy"]}))
    assert model.n_items == new + 1
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.center_, model.center_)
    np.testing.assert_array_equal(loaded.score_texts(text), model.score_texts(text))


def test_cold_item_and_cold_user(tiny_model_dir):
    data = block_dataset()
    model = LMContentRecommender(encoder=str(tiny_model_dir), cache_dir="none").fit(data)
    d0 = data.item_index("d0")
    assert np.linalg.norm(model.item_vectors()[d0]) == pytest.approx(1.0, abs=1e-5)
    scores = model.score(np.arange(data.n_users))
    assert np.isfinite(scores[:, d0]).all()
    # A cold user's profile is the plain mean over the items that have training interactions.
    warm = model.item_vectors()[np.flatnonzero(data.item_popularity() > 0)].mean(axis=0)
    np.testing.assert_allclose(
        model.user_vecs[data.user_index("zcold")], warm / np.linalg.norm(warm), atol=1e-6
    )


def test_recency_weights_count_interactions():
    inter = pd.DataFrame(
        {"user_id": ["u", "u", "u", "v"], "item_id": ["a", "b", "c", "a"], "timestamp": [30, 10, 20, 5]}
    )
    data = Dataset.from_frame(inter)
    w = recency_weights(data, half_life=1.0).toarray()
    u, v = data.user_index("u"), data.user_index("v")
    a, b, c = data.item_index(["a", "b", "c"])
    # u's order in time: b (age 2), c (age 1), a (age 0, latest)
    np.testing.assert_allclose(w[u, [a, b, c]], [1.0, 0.25, 0.5])
    np.testing.assert_allclose(w[v, a], 1.0)
    np.testing.assert_allclose(recency_weights(data, None).toarray()[u, [a, b, c]], [1.0, 1.0, 1.0])


def test_embedding_cache_is_used(tiny_model_dir, tmp_path, monkeypatch):
    from clarec.text.encoder import TextEncoder

    encoded: list[int] = []  # texts that went through the model, call by call
    real = TextEncoder._encode_uncached
    monkeypatch.setattr(
        TextEncoder, "_encode_uncached", lambda self, texts: encoded.append(len(texts)) or real(self, texts)
    )
    data = block_dataset()
    a = LMContentRecommender(encoder=str(tiny_model_dir), cache_dir=str(tmp_path / "c")).fit(data)
    assert sum(encoded) >= data.n_items  # the first fit encodes every item text
    encoded.clear()
    b = LMContentRecommender(encoder=str(tiny_model_dir), cache_dir=str(tmp_path / "c")).fit(data)
    assert encoded == []  # a new model, a new encoder: every vector comes from the cache
    np.testing.assert_array_equal(a.item_vectors(), b.item_vectors())


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAREC_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "embeddings"
    assert resolve_cache_dir(None) == tmp_path / "embeddings"
    assert resolve_cache_dir("none") is None
    assert resolve_cache_dir(str(tmp_path / "x")) == tmp_path / "x"
    monkeypatch.delenv("CLAREC_CACHE")
    assert str(default_cache_dir()).endswith(".cache/clarec/embeddings")


def test_default_fields_skip_copies_and_bad_fields_raise():
    items = pd.DataFrame(
        {
            "item_id": ["1"],
            "title": ["Toy Story"],
            "genres": [["Comedy"]],
            "categories": [["Comedy"]],
            "year": [1],
        }
    )
    assert choose_fields(items, None, "m") == ["title", "genres"]
    assert choose_fields(items, ["categories"], "m") == ["categories"]
    # columns with no value yet are kept, not taken for copies of each other (items added later fill them)
    blank = items.assign(brand=[None], price=[float("nan")], description=[None])
    assert choose_fields(blank, None, "m") == ["title", "genres", "brand", "price", "description"]
    with pytest.raises(ConfigError, match="no column"):
        choose_fields(items, ["plot"], "m")
    with pytest.raises(ConfigError, match="no item text"):
        choose_fields(items[["item_id", "year"]], None, "m")


def test_recent_positions():
    pos, ok = recent_positions(np.array([0, 3, 5]), np.array([3, 5, 5]), 3)
    np.testing.assert_array_equal(ok, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(np.where(ok, pos, -1), [[2, 1, 0], [4, 3, -1], [-1, -1, -1]])
    pos, ok = recent_positions(np.array([0, 0]), np.array([4, 4]), 2, skip=np.array([3, 2]))
    np.testing.assert_array_equal(pos, [[2, 1], [3, 1]])
    assert ok.all()


def test_bad_params():
    with pytest.raises(ConfigError):
        create("lm-content", {"half_life": 0})
    with pytest.raises(ConfigError):
        create("lm-content", {"similarity": "euclid"})
    with pytest.raises(ConfigError, match="unknown parameter"):
        create("lm-content", {"dim": 3})


def test_messy_item_texts_never_crash(tiny_model_dir):
    items = block_dataset().items.copy()
    items["title"] = items["title"].astype(object)
    items.loc[0, "title"] = ""
    items.loc[1, "title"] = "word " * 5000
    items.loc[2, "title"] = b"caf\xe9 \xff\xfe bytes"
    items.loc[3, "title"] = "!!! ... ??? ---"
    items.loc[4, "title"] = None
    items.loc[4, "genres"] = []
    data = Dataset.from_frame(
        block_dataset().interactions.assign(
            user_id=lambda d: block_dataset().user_ids[d["user"]],
            item_id=lambda d: block_dataset().item_ids[d["item"]],
        ),
        items=items,
        keep_all_items=True,
    )
    model = LMContentRecommender(encoder=str(tiny_model_dir), cache_dir="none").fit(data)
    assert np.isfinite(model.score(np.arange(data.n_users))).all()
    assert np.isfinite(model.item_vectors()).all()
