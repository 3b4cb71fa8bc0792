"""Every registered model's capability flags against what the model really does.

The server chooses how to serve a user from these flags (``supports_histories``: react to new
events; ``supports_new_items`` / ``new_items_from_text``: items posted after training;
``supports_texts``: profile-only users; ``history_mode``: how close fold-in is to the trained user).
A flag that says yes must work; a capability that works must not be hidden behind a flag that says
no (the server would then ignore it: before the flags were declared explicitly, the graph models
inherited a working fold-in and reported ``supports_histories = False``).

Each case builds a fresh model on the behavioural data set of :mod:`recommender_mixin`; a registered
model without a case fails :func:`test_every_registered_model_has_a_case`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from clarec.errors import ClarecError
from clarec.models import available_models, create
from clarec.models.base import Recommender

from .recommender_mixin import block_dataset

GRAPH = {"embedding_dim": 16, "epochs": 30, "batch_size": 32, "lr": 0.01, "progress": False, "seed": 1}
GRAPH |= {"num_threads": 1}
MF = {"embedding_dim": 16, "epochs": 40, "batch_size": 32, "lr": 0.05, "progress": False, "seed": 3}
TOWER = {"cache_dir": "none", "epochs": 25, "batch_size": 32, "embedding_dim": 16, "hidden": 32, "lr": 0.01}
TOWER |= {"num_threads": 1, "n_negatives": 0, "progress": False}
SEQ = {"embedding_dim": 16, "inner_size": 32, "dropout": 0.1, "lr": 0.01, "epochs": 40, "batch_size": 32}
SEQ |= {"progress": False, "num_threads": 1}
ALPHA = {"cache_dir": "none", "epochs": 40, "batch_size": 32, "n_negatives": 8, "lr": 0.01, "hidden": 32}
ALPHA |= {"embedding_dim": 16, "progress": False, "num_threads": 1, "seed": 0}
TEXT_SEQ = {"cache_dir": "none", "adaptor_dropout": 0.0, "temperature": 0.1}


def _align(encoder: str) -> dict:
    return {"weight": 0.1, "encoder": encoder, "cache_dir": "none"}


#: case label -> (registered model name, factory taking the tiny encoder folder)
CASES: dict[str, tuple[str, Callable[[str], Recommender]]] = {
    "popularity": ("popularity", lambda enc: create("popularity")),
    "itemknn": ("itemknn", lambda enc: create("itemknn", {"k_neighbors": 10})),
    "ease": ("ease", lambda enc: create("ease", {"reg": 10.0})),
    "alpharec": ("alpharec", lambda enc: create("alpharec", ALPHA | {"encoder": enc})),
    "ease-lm": ("ease-lm", lambda enc: create("ease-lm", {"reg": 10.0, "encoder": enc, "cache_dir": "none"})),
    "blend": (
        "blend",
        lambda enc: create(
            "blend",
            {
                "members": [
                    {"name": "ease-lm", "params": {"reg": 10.0, "encoder": enc, "cache_dir": "none"}},
                    "itemknn",
                ]
            },
        ),
    ),
    "bpr": ("bpr", lambda enc: create("bpr", MF)),
    "bpr+align": ("bpr", lambda enc: create("bpr", MF | {"align": _align(enc)})),
    "tfidf": ("tfidf", lambda enc: create("tfidf")),
    "lm-content": ("lm-content", lambda enc: create("lm-content", {"encoder": enc, "cache_dir": "none"})),
    "two-tower": ("two-tower", lambda enc: create("two-tower", TOWER | {"encoder": enc})),
    "lightgcn": ("lightgcn", lambda enc: create("lightgcn", GRAPH)),
    "lightgcn+align": ("lightgcn", lambda enc: create("lightgcn", GRAPH | {"align": _align(enc)})),
    "sgl": ("sgl", lambda enc: create("sgl", GRAPH | {"ssl_weight": 0.02})),
    "simgcl": ("simgcl", lambda enc: create("simgcl", GRAPH | {"ssl_weight": 0.02})),
    "xsimgcl": ("xsimgcl", lambda enc: create("xsimgcl", GRAPH | {"ssl_weight": 0.02})),
    "byol-cf": ("byol-cf", lambda enc: create("byol-cf", GRAPH | {"epochs": 60, "momentum": 0.9})),
    "sasrec": ("sasrec", lambda enc: create("sasrec", SEQ)),
    "slit": ("slit", lambda enc: create("slit", {"reg": 1.0})),
    "cl4srec": ("cl4srec", lambda enc: create("cl4srec", SEQ | {"ssl_weight": 0.1})),
    "duorec": ("duorec", lambda enc: create("duorec", SEQ | {"ssl_weight": 0.1})),
    "text-seq": ("text-seq", lambda enc: create("text-seq", SEQ | TEXT_SEQ | {"encoder": enc})),
    "text-seq+ids": (
        "text-seq",
        lambda enc: create("text-seq", SEQ | TEXT_SEQ | {"encoder": enc, "id_embedding": True}),
    ),
    # its factory takes the tiny causal LM's folder (NEEDS_LLM), not the tiny encoder's
    "llm-rerank": (
        "llm-rerank",
        lambda llm: create(
            "llm-rerank",
            {
                "base": "ease",
                "base_params": {"reg": 10.0},
                "generator": llm,
                "cache_dir": "none",
                "max_new_tokens": 4,
            },
        ),
    ),
}
NEEDS_LLM = {"llm-rerank"}

NEW_ITEMS = pd.DataFrame(
    {
        "item_id": ["a-new", "z-new"],
        "title": ["galaxy space alien starship golf", "ocean whales reef kelp"],
        "genres": [["Sci-Fi", "Adventure"], ["Documentary"]],
    }
)


def test_every_registered_model_has_a_case():
    covered = {name for name, _ in CASES.values()}
    assert set(available_models()) <= covered, (
        f"models without a capability case: {sorted(set(available_models()) - covered)}; add one to CASES"
    )


@pytest.fixture(scope="module")
def data():
    return block_dataset()


@pytest.fixture(params=sorted(CASES))
def model(request, data, tiny_model_dir, tiny_llm_dir) -> Recommender:
    name, factory = CASES[request.param]
    m = factory(str(tiny_llm_dir if request.param in NEEDS_LLM else tiny_model_dir))
    assert m.name == name
    return m.fit(data)


def test_histories_flag(model, data):
    ua0 = data.user_index("uA0")
    own = data.to_csr()[ua0].indices
    b_hist = data.item_index(["b0", "b1"])
    if not model.supports_histories:
        with pytest.raises(ClarecError):
            model.score_histories([own])
        return
    s = model.score_histories([own, b_hist, np.empty(0, dtype=np.int64)])
    assert s.shape == (3, data.n_items) and s.dtype == np.float32 and np.isfinite(s).all()
    if model.history_mode == "constant":
        np.testing.assert_array_equal(s[0], s[1])
        np.testing.assert_array_equal(s[0], s[2])
        return
    assert model.history_mode in ("exact", "fold-in")
    if model.history_mode == "exact":
        np.testing.assert_allclose(s[0], model.score([ua0])[0], rtol=1e-5, atol=1e-6)
    # the history decides: uA0's own history brings back its withheld A item, two B items a B item
    unseen = s[0].copy()
    unseen[own] = -np.inf
    assert data.item_ids[int(np.argmax(unseen))] == "a5"
    other = s[1].copy()
    other[b_hist] = -np.inf
    assert data.item_ids[int(np.argmax(other))].startswith("b")


def test_new_items_flags(model, data):
    n = data.n_items
    if not model.supports_new_items:
        assert not model.new_items_from_text
        with pytest.raises(ClarecError):
            model.add_items(NEW_ITEMS)
        return
    assert model.add_items(NEW_ITEMS.iloc[:0]).tolist() == [] and model.n_items == n  # tfidf crashed
    if model.new_items_from_text:
        # an item with nothing to read was scored as the empty text (and a failed add left an aligned
        # model unable to score): refused, the model as it was
        before = model.score([0])
        with pytest.raises(ClarecError, match="no text"):
            model.add_items(pd.DataFrame({"item_id": ["blank"], "title": ["  "], "genres": [[]]}))
        assert model.n_items == n
        np.testing.assert_array_equal(model.score([0]), before)
    idx = model.add_items(NEW_ITEMS)
    np.testing.assert_array_equal(idx, [n, n + 1])
    assert model.n_items == n + 2
    ua0 = data.user_index("uA0")
    s = model.score([ua0])[0]
    assert s.shape == (n + 2,) and np.isfinite(s).all()
    ids, _ = model.recommend([ua0], k=n + 2 - len(data.to_csr()[ua0].indices))
    assert {n, n + 1} <= set(ids[0].tolist())  # added items are in the catalogue
    if model.new_items_from_text:
        # a space fan gets the new space item above the new ocean item: the text scored them
        assert s[n] > s[n + 1]
    else:
        assert s[n] == s[n + 1]  # no evidence about either yet


def test_texts_flag(model, data):
    if not model.supports_texts:
        with pytest.raises(ClarecError):
            model.score_texts(["galaxy space alien starship"])
        return
    s = model.score_texts(["galaxy space alien starship", "love romance wedding heart"])
    assert s.shape == (2, data.n_items) and s.dtype == np.float32 and np.isfinite(s).all()
    assert data.item_ids[int(np.argmax(s[0]))].startswith("a")
    assert data.item_ids[int(np.argmax(s[1]))].startswith("b")
