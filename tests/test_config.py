from __future__ import annotations

from pathlib import Path

import pytest

from clarec.config import dump_config, load_config, same_config
from clarec.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_shipped_config_is_valid():
    cfg = load_config(REPO / "configs" / "ml-100k.yaml")
    assert cfg.seed == 2024
    assert [m.name for m in cfg.models][:5] == ["popularity", "itemknn", "ease", "bpr", "tfidf"]
    assert cfg.evaluation.ks == [10, 20]
    assert cfg.split.method == "random" and cfg.split.params() == {"ratios": [0.8, 0.1, 0.1]}
    assert cfg.data == {"name": "ml-100k", "min_rating": 4}


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_builds_its_models(path):
    from clarec.models.registry import create

    cfg = load_config(path)
    for m in cfg.models:
        model = create(m.name, m.params)  # unknown model or parameter raises ConfigError
        assert set(m.search) <= set(model.param_names()), f"{m.key}: search over unknown parameters"


def test_a_saved_config_lacking_a_setting_added_since_is_the_same_config():
    """What a stopped ``clarec tune`` compares its final run folder's config with: a setting added to
    the schema since (absent from the saved text) counts at its default; any other difference does not."""
    import yaml

    cfg = load_config(REPO / "configs" / "ml-100k.yaml")
    saved = yaml.safe_load(dump_config(cfg))
    del saved["evaluation"]["device"], saved["tuning"]["pruning"]
    older = yaml.safe_dump(saved, sort_keys=False)
    assert older != dump_config(cfg) and same_config(older, cfg)
    saved["evaluation"]["ks"] = [5]
    assert not same_config(yaml.safe_dump(saved), cfg)
    assert not same_config("models: [", cfg) and not same_config("seed: 1\nfoo: 2\n", cfg)


def test_overrides(tmp_path):
    p = write(tmp_path, "data: {name: ml-100k}\nmodels: [{name: ease, params: {reg: 1.0}}]\n")
    cfg = load_config(p, ["models.0.params.reg=50", "evaluation.ks=[5, 20]", "seed=7", "split.seed=3"])
    assert cfg.models[0].params["reg"] == 50
    assert cfg.evaluation.ks == [5, 20]
    assert cfg.seed == 7
    assert cfg.split.params() == {"seed": 3}
    # The resolved config round-trips.
    again = load_config(raw=__import__("yaml").safe_load(dump_config(cfg)))
    assert again == cfg


@pytest.mark.parametrize(
    "text,needle",
    [
        ("data: {name: x}\nmodels: [{name: ease}]\nevaluaton: {}\n", "evaluaton: unknown key"),
        ("data: {name: x}\nmodels: [{name: ease, parms: {}}]\n", "models.0.parms: unknown key"),
        ("data: {name: x}\nmodels: [{name: ease}]\nseed: abc\n", "seed:"),
        ("data: {name: x}\nmodels: [{name: ease}]\nevaluation: {ks: [0]}\n", "positive"),
        ("models: [{name: ease}]\n", "'data' section is required"),
        ("data: {name: x}\nmodels: []\n", "at least one model"),
        ("data: {name: x}\n", "at least one model (or the config needs a 'pretrain' section)"),
        ("data: {name: x}\nmodels: [{name: ease}, {name: ease}]\n", "unique"),
        ("data: [1, 2\n", "invalid YAML"),
        ("- a\n- b\n", "mapping at the top level"),
        ("", "empty"),
        (
            "data: {name: x}\nmodels: [{name: ease, label: ease/big}]\n",
            "label 'ease/big' must be a plain name",
        ),
        ("data: {name: x}\nmodels: [{name: ease, label: ..}]\n", "label '..' must be a plain name"),
        ("name: ../../out\ndata: {name: x}\nmodels: [{name: ease}]\n", "name '../../out' must be a plain"),
        ("data: {name: x}\nmodels: [{name: ease}]\nseed: -1\n", "seed: Input should be greater than"),
        ("data: {name: x}\nmodels: [{name: ease}]\nevaluation: {sample_seed: -2}\n", "sample_seed"),
        ("data: {name: x}\nmodels: [{name: ease}]\nevaluation: {metrics: []}\n", "evaluation.metrics"),
    ],
)
def test_bad_configs_one_line(tmp_path, text, needle):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg
    assert str(tmp_path / "c.yaml") in msg


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = write(tmp_path, "data: {name: x}\nmodels: [{name: ease}]\n")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(p, ["seed"])
    for bad in ("=3", "models..name=bpr", " =3"):
        with pytest.raises(ConfigError, match="a key such as models.0.params.reg"):
            load_config(p, [bad])
    with pytest.raises(ConfigError, match="not an index"):
        load_config(p, ["models.5.name=bpr"])
    # a mapping or list cut short is its YAML error, not a string that fails the schema later
    with pytest.raises(ConfigError, match=r"--set models.0.params: the value '\{reg: ' is not valid YAML"):
        load_config(p, ["models.0.params={reg: "])
    assert load_config(p, ["name=a: b: c"]).name == "a: b: c"  # a string YAML cannot read stays a string


def test_predefined_needs_no_data(tmp_path):
    p = write(tmp_path, f"split: {{method: predefined, path: {tmp_path}}}\nmodels: [{{name: popularity}}]\n")
    cfg = load_config(p)
    assert cfg.data is None and cfg.split.params() == {"path": str(tmp_path)}


def test_a_predefined_split_refuses_data_keys_it_would_ignore(tmp_path):
    head = f"split: {{method: predefined, path: {tmp_path}}}\nmodels: [{{name: popularity}}]\n"
    with pytest.raises(
        ConfigError, match=r"would be ignored.*\['min_rating', 'name'\]|\['min_rating', 'name'\].*ignored"
    ):
        load_config(write(tmp_path, head + "data: {name: ml-100k, min_rating: 4}\n"))
    cfg = load_config(write(tmp_path, head + "data: {profiles: somewhere}\n"))  # applied after the split
    assert cfg.data == {"profiles": "somewhere"}


@pytest.mark.parametrize(
    "evaluation, message",
    [
        ("{main_metric: ndgc@20}", "main_metric 'ndgc@20' is not computed"),  # a typo
        ("{ks: [10], main_metric: ndcg@20}", "at a cut-off in ks \\[10\\]"),
        ("{metrics: [recall], main_metric: ndcg@10}", "one of recall"),
        ("{main_metric: ndcg}", "not computed"),
        ("{main_metric: NDCG@20}", "not computed"),  # results are keyed in lower case
    ],
)
def test_a_main_metric_that_is_not_computed_is_refused(tmp_path, evaluation, message):
    with pytest.raises(ConfigError, match=message):
        load_config(
            write(tmp_path, f"data: {{name: x}}\nmodels: [{{name: popularity}}]\nevaluation: {evaluation}\n")
        )
    ok = load_config(
        write(
            tmp_path, "data: {name: x}\nmodels: [{name: popularity}]\nevaluation: {main_metric: recall@10}\n"
        )
    )
    assert ok.evaluation.main_metric == "recall@10"
    left_out = load_config(
        write(tmp_path, "data: {name: x}\nmodels: [{name: popularity}]\nevaluation: {ks: [5, 10]}\n")
    )
    assert left_out.evaluation.main_metric == "ndcg@10"  # the default follows ks


def test_a_tuning_metric_that_is_not_computed_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="tuning.metric 'hit@50' is not computed"):
        load_config(
            write(tmp_path, "data: {name: x}\nmodels: [{name: popularity}]\ntuning: {metric: hit@50}\n")
        )


def test_models_may_be_left_out_with_a_pretrain_section(tmp_path):
    cfg = load_config(write(tmp_path, "data: {name: x}\npretrain: {method: byol}\n"))
    assert cfg.models == [] and cfg.pretrain.method == "byol"
    shipped = load_config(REPO / "configs" / "ml-latest-small-pretrain.yaml")
    assert shipped.models == [] and shipped.pretrain.fields is None  # the text models' default fields
