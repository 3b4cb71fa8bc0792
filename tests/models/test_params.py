"""Hyper-parameters declared once (clarec.models.params) and the base constructor that reads them."""

import inspect
from pathlib import Path

import numpy as np
import pytest

from clarec.errors import ConfigError
from clarec.models import create, get_model_class
from clarec.models.base import Recommender
from clarec.models.params import param, text_list
from clarec.models.torch_base import TorchRecommender


class Toy(Recommender):
    name = "toy"
    k = param(10, ge=1)
    share = param(0.5, ge=0, lt=1)
    mode = param("a", choices=("a", "b"))
    fields = param(None, text_list)

    def _check_params(self):
        if self.mode == "b" and self.k > 5:
            raise ConfigError("toy: mode b needs k <= 5")

    def _fit(self, train, valid):
        pass

    def score(self, users):
        return np.zeros((len(users), self.n_items), dtype=np.float32)


class SubToy(Toy):
    k = Toy.k.with_default(3)
    extra = param(True)


def test_declared_parameters_are_converted_stored_and_read_back():
    t = Toy(k="7", share=0, fields="title")
    assert (t.k, t.share, t.mode, t.fields) == (7, 0.0, "a", ["title"])
    assert isinstance(t.share, float)
    assert Toy.param_names() == ["k", "share", "mode", "fields"]
    assert t.get_params() == {"k": 7, "share": 0.0, "mode": "a", "fields": ["title"]}
    assert list(inspect.signature(Toy).parameters) == ["k", "share", "mode", "fields"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k": 0}, "toy: k must be >= 1, got 0"),
        ({"share": 1.0}, "toy: share must be < 1"),
        ({"share": float("nan")}, "toy: share must be a finite number, got nan"),
        ({"mode": "c"}, "toy: mode must be one of"),
        ({"k": "many"}, "toy: k must be an integer, got 'many'"),
        ({"k": 2.5}, "toy: k must be an integer, got 2.5"),
        ({"k": True}, "toy: k must be an integer, got True"),
        ({"share": float("inf")}, "toy: share must be a finite number, got inf"),
        ({"share": False}, "toy: share must be a finite number"),
        ({"k": None}, "toy: k must be set"),
        ({"kk": 1}, r"toy: unknown parameter\(s\) \['kk'\]"),
        ({"mode": "b", "k": 6}, "mode b needs k <= 5"),
    ],
)
def test_bad_values_are_one_config_error(params, message):
    with pytest.raises(ConfigError, match=message):
        Toy(**params)


def test_a_string_parameter_takes_a_string_or_a_number_not_a_list_or_a_flag():
    # str() turned these into "['ease']" and "True", refused much later as an unknown model or folder
    with pytest.raises(ConfigError, match=r"llm-rerank: base must be a string, got \['ease'\]"):
        create("llm-rerank", {"base": ["ease"]})
    with pytest.raises(ConfigError, match="lm-content: encoder must be a string, got True"):
        create("lm-content", {"encoder": True})
    assert create("lm-content", {"encoder": 2024}).encoder == "2024"  # YAML's reading of a folder name
    assert create("lm-content", {"encoder": Path("enc")}).encoder == "enc"


def test_a_subclass_inherits_and_overrides_defaults():
    s = SubToy()
    assert s.k == 3 and s.extra is True
    assert SubToy(k=4.0, extra=0).k == 4 and SubToy(extra=0).extra is False
    with pytest.raises(ConfigError, match="extra must be true or false, got 'maybe'"):
        SubToy(extra="maybe")
    # the subclass's own parameters come first, then the inherited ones
    assert SubToy.param_names() == ["extra", "k", "share", "mode", "fields"]
    with pytest.raises(ConfigError, match="k must be >= 1"):  # the range is inherited
        SubToy(k=0)


def test_torch_models_share_the_training_settings():
    settings = TorchRecommender.param_names()
    assert {"epochs", "batch_size", "patience", "min_epochs", "max_steps", "num_threads", "seed"} <= set(
        settings
    )
    for name in ("bpr", "lightgcn", "sgl", "simgcl", "xsimgcl", "byol-cf", "two-tower"):
        cls = get_model_class(name)
        assert issubclass(cls, TorchRecommender)
        assert set(settings) <= set(cls.param_names()), name
    # per-model defaults where the models differ
    assert get_model_class("bpr").params["epochs"].default == 200
    assert get_model_class("two-tower").params["patience"].default == 5
    assert get_model_class("byol-cf").params["n_layers"].default == 2
    with pytest.raises(ConfigError, match="min_epochs must be >= 0"):
        create("lightgcn", {"min_epochs": -1})


def test_every_model_round_trips_its_parameters():
    for name in (
        "popularity",
        "itemknn",
        "ease",
        "tfidf",
        "bpr",
        "lightgcn",
        "xsimgcl",
        "byol-cf",
        "two-tower",
    ):
        model = create(name)
        again = create(name, model.get_params())
        assert again.get_params() == model.get_params(), name
