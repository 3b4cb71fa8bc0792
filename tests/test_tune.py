"""clarec tune: validation-only search with the same budget per model, resumable, then seeds."""

from __future__ import annotations

import json

import pytest
from factories import make_random_dataset, write_events

from clarec.config import dump_config, load_config
from clarec.errors import ConfigError

optuna = pytest.importorskip("optuna")


def write_data(folder) -> str:
    return str(
        write_events(make_random_dataset(n_users=30, n_items=25, per_user=8, seed=1), folder / "events.csv")
    )


CONFIG = """
name: tiny
data: {{source: tabular, path: {path}}}
split: {{method: random, ratios: [0.6, 0.2, 0.2]}}
models:
  - name: popularity
  - name: ease
    search: {{reg: [1.0, 30.0, 1000.0]}}
  - name: bpr
    params: {{epochs: 3, embedding_dim: 8, progress: false, num_threads: 1}}
    search: {{lr: {{low: 0.001, high: 0.1, log: true}}, n_negatives: {{low: 1, high: 4}}}}
tuning: {{trials: 3, seeds: 2, split_seeds: true, pruning: false}}
evaluation: {{ks: [10, 20]}}
"""


@pytest.fixture
def cfg_path(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(CONFIG.format(path=write_data(tmp_path / "data")))
    return p


def spy_evaluations(monkeypatch, what) -> list:
    """A list that gets ``what(evaluator, part)`` of every evaluation from now on."""
    from clarec.evaluate import Evaluator

    got = []
    real = Evaluator.evaluate
    monkeypatch.setattr(
        Evaluator,
        "evaluate",
        lambda self, model, part="test", **kw: got.append(what(self, part)) or real(self, model, part, **kw),
    )
    return got


def test_tune_searches_on_validation_then_runs_the_winners(cfg_path, tmp_path, monkeypatch):
    from clarec.experiment import tune as tune_module

    parts = spy_evaluations(monkeypatch, lambda evaluator, part: part)
    finals = []
    real_run = tune_module.run_experiment
    monkeypatch.setattr(
        tune_module,
        "run_experiment",
        lambda cfg, out, **kw: finals.append(list(parts)) or real_run(cfg, out, **kw),
    )
    record = tune_module.tune(load_config(cfg_path), tmp_path / "run")
    assert finals[0] and set(finals[0]) == {"valid"}  # the search never scored the test part
    ease, bpr = record["models"]["ease"], record["models"]["bpr"]
    assert ease["trials"] == bpr["trials"] == 3 and record["models"]["popularity"]["trials"] == 0
    assert ease["best_params"]["reg"] in (1.0, 30.0, 1000.0)
    assert 0.001 <= bpr["best_params"]["lr"] <= 0.1 and bpr["best_params"]["n_negatives"] in range(1, 5)
    study = optuna.load_study(study_name="ease", storage=f"sqlite:///{tmp_path / 'run' / 'tune.db'}")
    assert ease["best_valid"] == max(t.value for t in study.trials)
    final = json.loads((tmp_path / "run" / "final" / "results.json").read_text())
    assert set(final) == {"popularity", "ease", "bpr"} and final["ease"]["split_seeds"] == [2024, 2025]
    saved = load_config(tmp_path / "run" / "final" / "config.yaml")
    assert {m.key: m.params for m in saved.models}["ease"] == {"reg": ease["best_params"]["reg"]}
    # a choice at an edge of its space is recorded and said (ease's middle value is not an edge)
    assert ("reg" in ease["at_edge"]) == (ease["best_params"]["reg"] != 30.0)
    # started again: the three trials are there, none is added, and the final fits are read back
    said = []
    tune_module.tune(load_config(cfg_path), tmp_path / "run", progress=said.append)
    assert any(line.startswith("ease: reg chosen at an edge") for line in said) == ("reg" in ease["at_edge"])
    assert (
        len(optuna.load_study(study_name="bpr", storage=f"sqlite:///{tmp_path / 'run' / 'tune.db'}").trials)
        == 3
    )
    log = tmp_path / "run" / "final" / "train" / "bpr" / "seed-2024" / "log.txt"
    # the finished seeds are read back from their result files: nothing is fitted, not even resumed
    assert log.read_text().count("epoch 1 loss") == 1 and "resumed" not in log.read_text()
    again = json.loads((tmp_path / "run" / "final" / "results.json").read_text())
    assert {m: (r["valid"], r["test"]) for m, r in again.items()} == {
        m: (r["valid"], r["test"]) for m, r in final.items()
    }


def test_a_choice_at_an_edge_of_its_space_is_named():
    from clarec.experiment.tune import at_edges

    space = {
        "lr": {"low": 0.001, "high": 0.1, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "n_layers": {"low": 1, "high": 4},
        "batch_size": [64, 256, 1024],
        "similarity": ["cosine", "dot", "l2"],
        "logq": [True, False],
        "k": [10, 20],
    }
    middle = {
        "lr": 0.01,
        "dropout": 0.25,
        "n_layers": 2,
        "batch_size": 256,
        "similarity": "dot",
        "logq": True,
        "k": 20,
    }
    assert at_edges(space, middle) == {}
    # within 5% of a range's end, on the log scale of a log range: 0.005 would be within 5% of the
    # low end on a linear scale, and 0.09 would not be near the high end
    assert set(at_edges(space, middle | {"lr": 0.0012, "dropout": 0.49})) == {"lr", "dropout"}
    assert at_edges(space, middle | {"lr": 0.005}) == {}
    assert at_edges(space, middle | {"lr": 0.09}) == {"lr": "0.09, at the high end of [0.001, 0.1]"}
    edges = at_edges(
        space, middle | {"n_layers": 1, "batch_size": 1024, "similarity": "l2", "logq": False, "k": 10}
    )
    assert edges == {
        "n_layers": "1, at the low end of [1, 4]",
        "batch_size": "1024, the highest of [64, 256, 1024]",
    }
    # the space's settings missing from the choice are passed over, and so is a range of one value
    assert at_edges(space, {"lr": 0.001}) == {"lr": "0.001, at the low end of [0.001, 0.1]"}
    assert at_edges({"reg": {"low": 1.0, "high": 1.0}}, {"reg": 1.0}) == {}


def test_the_search_validates_under_the_main_tables_convention(
    cfg_path, tmp_path, monkeypatch, validator_spy
):
    from clarec.experiment import tune as tune_module

    seen = spy_evaluations(monkeypatch, lambda evaluator, part: evaluator.history_items)
    monkeypatch.setattr(tune_module, "run_experiment", lambda cfg, out, **kw: {})
    kept = tmp_path / "kept.yaml"
    kept.write_text(
        cfg_path.read_text()
        .replace("evaluation: {ks: [10, 20]}", "evaluation: {ks: [10, 20], history_items: [kept, masked]}")
        .replace("tuning: {trials: 3,", "tuning: {trials: 2,")
    )
    tune_module.tune(load_config(kept), tmp_path / "run")
    assert seen and set(seen) == {"kept"}
    assert validator_spy == [False, False]  # bpr's two trials validate in training under it too


def test_a_trial_below_the_pruner_stops_inside_training(cfg_path, tmp_path):
    from clarec.evaluate import Evaluator
    from clarec.experiment.runner import prepare_data
    from clarec.experiment.tune import _trial

    cfg = load_config(cfg_path)
    split = prepare_data(cfg).split
    bpr = next(m for m in cfg.models if m.name == "bpr")
    bpr = bpr.model_copy(update={"params": bpr.params | {"epochs": 50}})
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5))
    _trial(study, bpr, cfg, split, Evaluator(split), "ndcg@20", tmp_path / "trial-runs")
    trial = study.trials[0]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]  # stopped at epoch 1
    assert not (tmp_path / "trial-runs" / "0").exists()  # an ended trial's checkpoints are removed


def test_the_pruning_warm_up_is_the_configs(cfg_path, tmp_path, monkeypatch):
    from clarec.experiment import tune as tune_module

    made = []
    real = optuna.pruners.MedianPruner
    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **kw: made.append(kw) or real(**kw))
    monkeypatch.setattr(tune_module, "run_experiment", lambda cfg, out, **kw: None)
    cfg = load_config(cfg_path)
    for warmup in (2, 0, 6):  # 2 is the default
        tuning = cfg.tuning.model_copy(
            update={"trials": 1} | ({"pruning_warmup": warmup} if warmup != 2 else {})
        )
        tune_module.tune(cfg.model_copy(update={"tuning": tuning}), tmp_path / f"w{warmup}")
        assert made and all(kw["n_warmup_steps"] == warmup for kw in made)
        made.clear()
    # left out, it is not written: a config of before the setting dumps as it did, and its kept
    # seeds and final runs are read back, not fitted again
    assert "pruning_warmup" not in dump_config(cfg)
    with pytest.raises(ValueError, match="pruning_warmup"):
        type(cfg.tuning)(pruning_warmup=-1)


def test_a_search_seed_moves_the_search_path_only(cfg_path, tmp_path, monkeypatch):
    from clarec.experiment import tune as tune_module

    seeds, fits = [], []
    real = optuna.samplers.TPESampler
    monkeypatch.setattr(optuna.samplers, "TPESampler", lambda **kw: seeds.append(kw["seed"]) or real(**kw))
    monkeypatch.setattr(tune_module, "run_experiment", lambda cfg, out, **kw: fits.append(cfg.seed))
    cfg = load_config(cfg_path)
    tune_module.tune(cfg, tmp_path / "own")
    assert set(seeds) == {cfg.seed}  # left out: the config's seed, as before the setting existed
    assert "search_seed" not in dump_config(cfg).split("tuning:")[1]
    seeds.clear()
    moved = cfg.model_copy(update={"tuning": cfg.tuning.model_copy(update={"search_seed": 7})})
    tune_module.tune(moved, tmp_path / "moved")
    assert set(seeds) == {7}
    assert set(fits) == {cfg.seed}  # the final seeds are the config's either way


def test_bad_search_spaces(tmp_path, cfg_path):
    from clarec.experiment.tune import tune

    text = cfg_path.read_text()
    cfg_path.write_text(text.replace("search: {reg: [1.0, 30.0, 1000.0]}", "search: {regg: [1.0]}"))
    with pytest.raises(ConfigError, match="search over unknown parameter"):
        tune(load_config(cfg_path), tmp_path / "r")
    # a seed is not chosen on validation; a setting fixed and searched would be overridden unseen
    cfg_path.write_text(text.replace("search: {reg: [1.0, 30.0, 1000.0]}", "search: {seed: [1, 2]}"))
    with pytest.raises(ConfigError, match=r"search over \['seed'\]: a seed.*not a setting to choose"):
        tune(load_config(cfg_path), tmp_path / "r")
    cfg_path.write_text(
        text.replace(
            "search: {reg: [1.0, 30.0, 1000.0]}", "params: {reg: 5.0}\n    search: {reg: [1.0, 30.0]}"
        )
    )
    with pytest.raises(ConfigError, match=r"\['reg'\] both fixed in params and searched"):
        tune(load_config(cfg_path), tmp_path / "r")
    for bad, needle in (
        ("[]", "must not be empty"),
        ("{low: 5, high: 1}", "below high"),
        ("{low: 0, high: 1, log: true}", "low > 0"),
        ("3", "list of choices"),
    ):
        cfg_path.write_text(text.replace("[1.0, 30.0, 1000.0]", bad))
        with pytest.raises(ConfigError, match=needle):
            load_config(cfg_path)


def test_a_search_moves_to_another_folder_through_its_trials_file(cfg_path, tmp_path, monkeypatch):
    from clarec.experiment import tune as tune_module

    monkeypatch.setattr(tune_module, "run_experiment", lambda cfg, out, **kw: None)
    cfg = load_config(cfg_path)
    tune_module.tune(
        cfg.model_copy(update={"tuning": cfg.tuning.model_copy(update={"trials": 2})}), tmp_path / "a"
    )
    saved = json.loads((tmp_path / "a" / "trials.json").read_text())
    assert {k: len(v) for k, v in saved.items()} == {"ease": 2, "bpr": 2}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "trials.json").write_text(json.dumps(saved))
    record = tune_module.tune(cfg, tmp_path / "b")  # a budget of three: one trial more each
    assert record["models"]["bpr"]["trials"] == record["models"]["ease"]["trials"] == 3
    for key in ("ease", "bpr"):
        study = optuna.load_study(study_name=key, storage=f"sqlite:///{tmp_path / 'b' / 'tune.db'}")
        assert len(study.trials) == 3
        assert [(t.params, t.value) for t in study.trials[:2]] == [
            (t["params"], t["value"]) for t in saved[key]
        ]
        assert len(json.loads((tmp_path / "b" / "trials.json").read_text())[key]) == 3
    # the trial added where the search went on is a new draw, not the first trial's settings again
    bpr = optuna.load_study(study_name="bpr", storage=f"sqlite:///{tmp_path / 'b' / 'tune.db'}").trials
    assert bpr[2].params not in (bpr[0].params, bpr[1].params)
    curve = optuna.load_study(study_name="bpr", storage=f"sqlite:///{tmp_path / 'b' / 'tune.db'}").trials[0]
    assert curve.intermediate_values == {int(k): v for k, v in saved["bpr"][0]["curve"].items()} != {}
    # a trials file of another search space, or not a trials file at all: one clear error
    saved["ease"][0]["params"] = {"regg": 1.0}
    for bad, needle in ((saved, r"'ease' trials searched \['regg'\]"), ([1], "not a trials file")):
        (tmp_path / "c").mkdir(exist_ok=True)
        (tmp_path / "c" / "trials.json").write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=needle):
            tune_module.tune(cfg, tmp_path / "c")
        assert not (tmp_path / "c" / "tune.db").exists()  # nothing was started: the file is read again
    # its trials drawn outside the config's space, or with a config of another seed beside them: refused
    # (the file bypassed every check: a best trial outside the space, figures of another split)
    saved = json.loads((tmp_path / "a" / "trials.json").read_text())
    saved["ease"][0]["params"] = {"reg": 5.0}
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "trials.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="drew reg=5.0, outside the config's space"):
        tune_module.tune(cfg, tmp_path / "d")
    (tmp_path / "e").mkdir()
    for name in ("trials.json", "config.yaml"):
        (tmp_path / "e" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    with pytest.raises(ConfigError, match="holds a search made on other data, split, evaluation or seed"):
        tune_module.tune(cfg.model_copy(update={"seed": 7}), tmp_path / "e")


def test_a_dotted_name_searches_a_key_inside_a_mapping_setting(cfg_path, tmp_path, monkeypatch):
    from clarec.evaluate import Evaluator
    from clarec.experiment import tune as tune_module
    from clarec.experiment.runner import prepare_data

    put = tune_module.with_settings
    assert put(
        {"lr": 0.1, "align": {"weight": 0.05, "mode": "contrastive"}}, {"align.weight": 0.2, "lr": 0.3}
    ) == {
        "lr": 0.3,
        "align": {"weight": 0.2, "mode": "contrastive"},
    }
    assert put({}, {"align.weight": 0.2}) == {"align": {"weight": 0.2}}
    with pytest.raises(ConfigError, match="not a mapping"):
        put({"lr": 0.1}, {"lr.x": 1})
    # a trial builds its model with the drawn values inside the mapping, the rest of it kept
    cfg = load_config(cfg_path)
    bpr = next(m for m in cfg.models if m.name == "bpr")
    space = {"align.weight": [0.3], "align.mode": ["generative"]}
    bpr = bpr.model_copy(
        update={"params": bpr.params | {"align": {"weight": 0.05, "ridge": 2.0}}, "search": space}
    )
    built, real = [], tune_module.create
    monkeypatch.setattr(
        tune_module, "create", lambda name, params: built.append(params) or real("popularity", {})
    )
    split = prepare_data(cfg).split
    study = optuna.create_study(direction="maximize")
    tune_module._trial(study, bpr, cfg, split, Evaluator(split), "ndcg@20", tmp_path / "trial-runs")
    assert built[0]["align"] == {"weight": 0.3, "mode": "generative", "ridge": 2.0}
    assert study.trials[0].params == {"align.weight": 0.3, "align.mode": "generative"}
    monkeypatch.setattr(tune_module, "create", real)
    # a misspelt key inside the mapping, or an unknown mapping, fails before any trial
    text = cfg_path.read_text()
    for bad, needle in (("align.weigth", "unknown align key"), ("alignn.weight", "unknown parameter")):
        cfg_path.write_text(
            text.replace(
                "n_negatives: {low: 1, high: 4}}", f"n_negatives: {{low: 1, high: 4}}, {bad}: [0.1]}}"
            )
        )
        with pytest.raises(ConfigError, match=needle):
            tune_module._check_spaces(load_config(cfg_path))


@pytest.mark.parametrize("kills", [[3], [2, 3]])  # stopped once; stopped again while going on
def test_a_search_stopped_inside_a_trial_goes_on_from_its_last_epoch(cfg_path, tmp_path, monkeypatch, kills):
    from clarec.experiment import tune as tune_module
    from clarec.experiment.tune import RESUMES, TRIAL_RUNS

    cfg = load_config(cfg_path)
    bpr = next(m for m in cfg.models if m.name == "bpr")
    bpr = bpr.model_copy(update={"params": bpr.params | {"epochs": 4}})
    cfg = cfg.model_copy(update={"models": [bpr], "tuning": cfg.tuning.model_copy(update={"seeds": 1})})
    whole = tmp_path / "whole"
    tune_module.tune(cfg, whole)
    reference = optuna.load_study(study_name="bpr", storage=f"sqlite:///{whole / 'tune.db'}").trials[0]

    real_report = optuna.trial.Trial.report

    out = tmp_path / "stopped"
    for kill in kills:

        def killed(self, value, step, kill=kill):
            if step == kill:  # as if the process died: the trial is left running, the epoch before saved
                raise KeyboardInterrupt
            real_report(self, value, step)

        monkeypatch.setattr(optuna.trial.Trial, "report", killed)
        with pytest.raises(KeyboardInterrupt):
            tune_module.tune(cfg, out)
        assert (out / TRIAL_RUNS / "bpr" / "0" / "last.pt").is_file()  # the first try's folder
    monkeypatch.setattr(optuna.trial.Trial, "report", real_report)
    models = []
    real_create = tune_module.create
    monkeypatch.setattr(tune_module, "create", lambda *a: models.append(real_create(*a)) or models[-1])
    tune_module.tune(cfg, out)

    trials = optuna.load_study(study_name="bpr", storage=f"sqlite:///{out / 'tune.db'}").trials
    assert [t.state.name for t in trials[: len(kills)]] == ["FAIL"] * len(kills)
    assert [t.user_attrs.get(RESUMES) for t in trials[: len(kills) + 1]] == [None, *range(len(kills))]
    again = trials[len(kills)]
    assert again.state.name == "COMPLETE" and again.params == trials[0].params == reference.params
    resumed = next(x for x in models if x.run_dir and x.run_dir.endswith(f"{TRIAL_RUNS}/bpr/0"))
    assert resumed.history_.resumed_after == [k - 1 for k in kills]  # no epoch was fitted twice
    # the resumed trial is the uninterrupted one: the same curve and validation figure
    assert again.intermediate_values == reference.intermediate_values and again.value == reference.value
    assert sum(t.state.name == "COMPLETE" for t in trials) == cfg.tuning.trials
    assert not any((out / TRIAL_RUNS / "bpr").iterdir())  # ended trials leave no checkpoints


def test_a_search_under_other_data_is_refused_and_left_as_it_was(cfg_path, tmp_path):
    from clarec.experiment.tune import tune

    cfg = load_config(
        cfg_path, ["tuning.trials=1", "tuning.seeds=1", "models=[{name: ease, search: {reg: [1.0, 30.0]}}]"]
    )
    tune(cfg, tmp_path / "run")
    kept = {p: (tmp_path / "run" / p).read_bytes() for p in ("config.yaml", "tune.db", "final/results.json")}
    other = tmp_path / "other.csv"
    lines = (tmp_path / "data" / "events.csv").read_text().splitlines()
    other.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    moved = load_config(
        cfg_path,
        [
            f"data.path={other}",
            "tuning.trials=1",
            "tuning.seeds=1",
            "models=[{name: ease, search: {reg: [1.0, 30.0]}}]",
        ],
    )
    with pytest.raises(ConfigError, match="holds a search made on other data"):
        tune(moved, tmp_path / "run")
    broken = load_config(cfg_path, [f"data.path={tmp_path / 'missing.csv'}", "tuning.trials=1"])
    with pytest.raises(Exception, match="missing.csv"):
        tune(broken, tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "config.yaml").exists()
    assert {p: (tmp_path / "run" / p).read_bytes() for p in kept} == kept
    # more trials on the same ground go on
    tune(
        load_config(
            cfg_path,
            ["tuning.trials=2", "tuning.seeds=1", "models=[{name: ease, search: {reg: [1.0, 30.0]}}]"],
        ),
        tmp_path / "run",
    )


def test_a_search_of_another_space_or_settings_is_refused_and_an_earlier_final_run_kept(cfg_path, tmp_path):
    # a changed space went on with the old trials (its best outside the new space); a narrower model
    # list deleted the other models' final run
    from clarec.experiment.tune import tune

    models = (
        "models=[{name: ease, search: {reg: [1.0, 30.0]}}, {name: itemknn, search: {k_neighbors: [5, 10]}}]"
    )
    tune(load_config(cfg_path, ["tuning.trials=1", "tuning.seeds=1", models]), tmp_path / "run")
    kept = (tmp_path / "run" / "final" / "results.json").read_text()
    for other, what in (
        ("models=[{name: ease, search: {reg: [1000.0, 5000.0]}}]", "space"),
        ("models=[{name: ease, params: {max_items: 100}, search: {reg: [1.0, 30.0]}}]", "params"),
    ):
        with pytest.raises(ConfigError, match=f"'ease' was searched with other {what}"):
            tune(load_config(cfg_path, ["tuning.trials=1", "tuning.seeds=1", other]), tmp_path / "run")
    tune(
        load_config(
            cfg_path,
            ["tuning.trials=1", "tuning.seeds=1", "models=[{name: ease, search: {reg: [1.0, 30.0]}}]"],
        ),
        tmp_path / "run",
    )
    assert set(json.loads((tmp_path / "run" / "final" / "results.json").read_text())) == {"ease"}
    assert (tmp_path / "run" / "final.previous-1" / "results.json").read_text() == kept
    assert (
        "itemknn" in json.loads((tmp_path / "run" / "final.previous-1" / "tune.json").read_text())["models"]
    )


def test_every_value_a_trial_can_draw_is_checked_before_the_first(cfg_path, tmp_path):
    # only a range's low end and a list's first choice were: three trials trained, then an error
    from clarec.experiment.tune import tune

    for space, message in (
        (
            "{name: bpr, params: {epochs: 1}, search: {n_negatives: [1, 4, 0]}}",
            "n_negatives must be >= 1, got 0",
        ),
        ("{name: sgl, params: {epochs: 1}, search: {drop_ratio: {low: 0.1, high: 1.0}}}", "drop_ratio"),
    ):
        cfg = load_config(cfg_path, ["tuning.trials=2", f"models=[{space}]"])
        with pytest.raises(ConfigError, match=message):
            tune(cfg, tmp_path / "r")
        assert not (tmp_path / "r" / "tune.db").exists()


def test_the_search_scores_any_metric_and_prunes_at_its_cut_off(cfg_path, tmp_path, monkeypatch):
    # a metric other than ndcg/recall/hit was refused after the first trial's fit; the curve pruning
    # reads stayed NDCG@20 whatever the metric's cut-off
    from clarec.experiment import tune as tune_module

    made = []
    real = tune_module.create
    monkeypatch.setattr(
        tune_module, "create", lambda name, params: made.append((name, params)) or real(name, params)
    )
    models = "models=[{name: bpr, params: {epochs: 1, embedding_dim: 8, num_threads: 1}, search: {lr: [0.01, 0.1]}}]"
    cfg = load_config(cfg_path, ["tuning.trials=2", "tuning.seeds=1", "tuning.metric=ndcg@10", models])
    tune_module.tune(cfg, tmp_path / "r")
    trials = [p for name, p in made if "run_dir" in p]
    assert len(trials) == 2 and all(p["eval_k"] == 10 for p in trials)
    cfg = load_config(cfg_path, ["tuning.trials=2", "tuning.seeds=1", "tuning.metric=mrr@20", models])
    record = tune_module.tune(cfg, tmp_path / "m")
    assert record["metric"] == "mrr@20" and record["models"]["bpr"]["trials"] == 2
    # a study scored on one metric does not go on under another (its figures would be compared)
    before = (tmp_path / "m" / "config.yaml").read_bytes()
    cfg = load_config(cfg_path, ["tuning.trials=3", "tuning.seeds=1", "tuning.metric=recall@20", models])
    with pytest.raises(ConfigError, match="searched on validation mrr@20, not recall@20"):
        tune_module.tune(cfg, tmp_path / "m")
    assert (tmp_path / "m" / "config.yaml").read_bytes() == before  # the refused config not written


def test_a_folder_that_holds_other_files_is_refused(cfg_path, tmp_path):
    from clarec.experiment.tune import tune

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text("my own config")
    (tmp_path / "mine" / "notes.txt").write_text("data")
    cfg = load_config(
        cfg_path, ["tuning.trials=1", "tuning.seeds=1", "models=[{name: ease, search: {reg: [1.0]}}]"]
    )
    with pytest.raises(ConfigError, match="holds what a tune does not write \\(notes.txt\\)"):
        tune(cfg, tmp_path / "mine")
    assert (tmp_path / "mine" / "config.yaml").read_text() == "my own config"


def test_a_diverged_trial_fails_without_ending_the_search(cfg_path, tmp_path, monkeypatch):
    from clarec.experiment.tune import tune
    from clarec.models.bpr import BPR
    from clarec.train.loop import DivergedError

    real, calls = BPR._fit, []

    def fit(self, train, valid):
        calls.append(self.lr)
        if len(calls) == 1:
            raise DivergedError("training loss became nan in epoch 1")
        return real(self, train, valid)

    monkeypatch.setattr(BPR, "_fit", fit)
    lines = []
    models = "models=[{name: bpr, params: {epochs: 1, embedding_dim: 8, num_threads: 1}, search: {lr: [0.01, 0.1]}}]"
    cfg = load_config(cfg_path, ["tuning.trials=2", "tuning.seeds=1", models])
    record = tune(cfg, tmp_path / "r", progress=lines.append)
    assert record["models"]["bpr"]["trials"] == 2 and len(calls) == 4  # 3 trials, then the final seed
    assert any("diverged" in line and "does not count" in line for line in lines)
    monkeypatch.setattr(BPR, "_fit", lambda self, train, valid: (_ for _ in ()).throw(DivergedError("nan")))
    with pytest.raises(ConfigError, match="3 trials diverged"):
        tune(cfg, tmp_path / "all")


def test_ranges_that_would_draw_other_values_than_they_say_are_refused(cfg_path, tmp_path):
    from clarec.experiment.tune import at_edges, tune

    cfg_path.write_text(
        cfg_path.read_text().replace("[1.0, 30.0, 1000.0]", '{low: 1, high: 9, log: "false"}')
    )
    with pytest.raises(ConfigError, match="log must be true or false"):
        load_config(cfg_path)  # was searched on a log scale
    cfg = load_config(cfg_path, ["models=[{name: itemknn, search: {k_neighbors: {low: 10, high: 400.0}}}]"])
    with pytest.raises(ConfigError, match="k_neighbors is an integer parameter"):
        tune(cfg, tmp_path / "r")  # trials drew 239.3 and failed after the others had run
    assert at_edges({"n": {"low": 1, "high": 2}}, {"n": 1}) == {}  # two values have no edge


def test_a_folder_another_process_is_tuning_or_running_in_is_refused(cfg_path, tmp_path):
    import subprocess
    import sys

    from clarec.experiment.runner import LOCK, folder_lock, run_experiment
    from clarec.experiment.tune import tune

    cfg = load_config(
        cfg_path, ["tuning.trials=1", "tuning.seeds=1", "models=[{name: ease, search: {reg: [1.0]}}]"]
    )
    out = tmp_path / "busy"
    with folder_lock(out, "tune"):  # held as a tune in progress holds it
        with pytest.raises(ConfigError, match=f"--out {out} is in use by another clarec tune \\(pid \\d+\\)"):
            tune(cfg, out)
        with pytest.raises(ConfigError, match="in use by another clarec tune"):
            run_experiment(cfg, out, seeds=1, save_models=False)
        # another process too (the lock is the system's, not this interpreter's)
        probe = "import fcntl,sys; f=open(sys.argv[1],'a+'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)"
        assert subprocess.run([sys.executable, "-c", probe, str(out / LOCK)], capture_output=True).returncode
    assert list(out.iterdir()) == [out / LOCK]  # nothing written by the refused ones
    tune(cfg, out)  # released: the folder is usable, its hidden lock file no stranger
    assert (out / "tune.json").is_file()
