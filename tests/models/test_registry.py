import pytest
from factories import make_random_dataset

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
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['lambda'\]; allowed"):
        create("ease", {"lambda": 1.0})
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['regg'\] \(did you mean 'reg'\?\)"):
        create("ease", {"regg": 1.0})


def test_bad_value_is_a_config_error():
    with pytest.raises(ConfigError, match="reg must be > 0"):
        create("ease", {"reg": -3})


PLUGIN = '''
import numpy as np

from clarec.models.popularity import Popularity
from clarec.models.registry import register


@register("plugin-pop")
class PluginPopularity(Popularity):
    """Popularity written outside clarec."""
'''


def test_a_model_written_outside_clarec_registers_as_a_plugin(registry, tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    from types import SimpleNamespace

    from clarec.errors import ClarecError
    from clarec.models.base import Recommender

    (tmp_path / "my_models.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CLAREC_PLUGINS", "my_models")
    cls = get_model_class("plugin-pop")
    assert cls.__name__ == "PluginPopularity" and "plugin-pop" in available_models()
    # an entry point of the clarec.models group is imported the same way
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.delenv("CLAREC_PLUGINS")
    fake = [SimpleNamespace(name="mine", value="my_models:PluginPopularity")]
    monkeypatch.setattr(registry, "entry_points", lambda group: fake if group == "clarec.models" else [])
    assert get_model_class("plugin-pop") is cls  # the module is imported once; the class stays
    # the command line sees it through the environment
    env = {"CLAREC_PLUGINS": "my_models", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "clarec", "models"], capture_output=True, text=True, env={**os.environ, **env}
    )
    assert out.returncode == 0 and "plugin-pop" in out.stdout, out.stderr
    # a plugin that does not import is one error naming where it was named
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setenv("CLAREC_PLUGINS", "no_such_plugin_module")
    with pytest.raises(
        ClarecError, match="model plugin 'no_such_plugin_module' \\(named in CLAREC_PLUGINS\\)"
    ):
        get_model_class("ease")
    # a saved plugin model without its plugin: the folder is named, and what to do
    monkeypatch.delenv("CLAREC_PLUGINS")
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    folder = cls().fit(make_random_dataset()).save(tmp_path / "saved")
    del registry._MODELS["plugin-pop"]
    with pytest.raises(ClarecError, match=r"saved: unknown model 'plugin-pop'.*CLAREC_PLUGINS"):
        Recommender.load(folder)


def test_model_names_are_plain_and_not_taken_by_another_class(registry):
    from clarec.models.registry import register

    with pytest.raises(ConfigError, match="taken by clarec.models.ease.EASE: register .*Other under another"):

        @register("ease")
        class Other(EASE):
            pass

    for bad in ("my/model", "", ".."):
        with pytest.raises(ConfigError, match="must be a plain name"):
            register(bad)
    # the same class again (its module reloaded) takes its name over
    again = type("EASE", (EASE,), {"__module__": EASE.__module__, "__qualname__": EASE.__qualname__})
    register("ease")(again)
    assert get_model_class("ease") is again


def test_a_subclass_under_its_parents_name_is_not_saved_as_the_parent(tmp_path):
    from clarec.errors import ClarecError

    class MyPopularity(Popularity):  # not registered: it has "popularity", Popularity's name
        pass

    train = make_random_dataset()
    with pytest.raises(
        ClarecError, match="MyPopularity has the name 'popularity' of Popularity.*register it"
    ):
        MyPopularity().fit(train).save(tmp_path / "m")
    # and a class's load refuses a folder of a model that is not one of it
    Popularity().fit(train).save(tmp_path / "p")
    with pytest.raises(ClarecError, match="holds a 'popularity' model, not a EASE"):
        EASE.load(tmp_path / "p")
