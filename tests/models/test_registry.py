import pytest

from clarec.errors import ConfigError
from clarec.models import available_models, create, get_model_class
from clarec.models.bpr import BPR
from clarec.models.ease import EASE
from clarec.models.itemknn import ItemKNN
from clarec.models.popularity import Popularity
from clarec.models.tfidf import TfidfRecommender

CLASSES = {"popularity": Popularity, "itemknn": ItemKNN, "ease": EASE, "bpr": BPR, "tfidf": TfidfRecommender}


def test_classic_models_are_registered():
    assert set(CLASSES) <= set(available_models())
    for name, cls in CLASSES.items():
        assert get_model_class(name) is cls and cls.name == name


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_params_roundtrip_through_create(name):
    model = create(name)
    again = create(name, model.get_params())
    assert again.get_params() == model.get_params()


def test_create_with_params():
    model = create("itemknn", {"k_neighbors": 7, "shrink": 0.5})
    assert (model.k_neighbors, model.shrink) == (7, 0.5)
    assert repr(model).startswith("ItemKNN(k_neighbors=7, shrink=0.5")


def test_unknown_model_suggests_a_name():
    with pytest.raises(ConfigError, match="did you mean 'ease'"):
        get_model_class("eas")


def test_unknown_parameter():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['lambda'\]"):
        create("ease", {"lambda": 1.0})


def test_bad_value_is_a_config_error():
    with pytest.raises(ConfigError, match="reg must be > 0"):
        create("ease", {"reg": -3})
