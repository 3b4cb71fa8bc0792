"""benchmarks/leaderboard.py's cells: a run folder's study and final results are only taken for the
config it was started under (an edited search space must not reuse the old space's results)."""

from __future__ import annotations

import json

import pytest
from factories import load_benchmark


@pytest.fixture(scope="module")
def leaderboard():
    return load_benchmark("leaderboard")


def _suite(lr_high: float) -> dict:
    return {
        "trials": 2,
        "seeds": 1,
        "evaluation": {"ks": [20], "main_metric": "ndcg@20"},
        "baselines": ["ease"],
        "models": [{"name": "bpr", "search": {"lr": {"low": 0.001, "high": lr_high, "log": True}}}],
        "datasets": {"ml-100k": {"data": {"name": "ml-100k"}, "split": {"method": "random"}}},
    }


def _finish(out, result):
    (out / "final").mkdir(parents=True)
    (out / "final" / "results.json").write_text(json.dumps({"bpr": result}))
    (out / "tune.json").write_text(json.dumps({"models": {"bpr": {"best_params": {"lr": 0.002}}}}))


def test_a_cell_keeps_only_results_of_its_own_config(leaderboard, tmp_path):
    out, records = tmp_path / "runs" / "bpr", tmp_path / "records"
    old, new = _suite(0.01), _suite(0.1)
    # a finished folder from before stamps (or of another config) is not recorded, and is emptied
    _finish(out, {"test": {"ndcg@20": 0.1}})
    assert not leaderboard.keep_record(new, "ml-100k", "bpr", out, records)
    leaderboard.start_folder(out, leaderboard.cell_config(old, "ml-100k", "bpr", records))
    assert [p.name for p in out.iterdir()] == [".stamp.json"]
    # a folder stamped under the earlier, visible name is still its key's, and is re-stamped hidden
    (out / ".stamp.json").rename(out / "stamp.json")
    assert leaderboard.stamped(out, leaderboard.cell_config(old, "ml-100k", "bpr", records))
    leaderboard.start_folder(out, leaderboard.cell_config(old, "ml-100k", "bpr", records))
    assert [p.name for p in out.iterdir()] == [".stamp.json"]
    # finished under the old space: recorded for it, not for the new one
    _finish(out, {"test": {"ndcg@20": 0.2}})
    assert not leaderboard.keep_record(new, "ml-100k", "bpr", out, records)
    assert leaderboard.cell_record(new, "ml-100k", "bpr", records) is None
    assert leaderboard.keep_record(old, "ml-100k", "bpr", out, records)
    record = leaderboard.cell_record(old, "ml-100k", "bpr", records)
    assert record["result"]["test"]["ndcg@20"] == 0.2 and record["best_params"] == {"lr": 0.002}
    # the same config again keeps the folder (a stopped search resumes); another empties it
    leaderboard.start_folder(out, leaderboard.cell_config(old, "ml-100k", "bpr", records))
    assert (out / "final" / "results.json").is_file()
    leaderboard.start_folder(out, leaderboard.cell_config(new, "ml-100k", "bpr", records))
    assert not (out / "final").exists()


def test_a_data_sets_added_search_and_params_reach_its_mini_batch_models_only(leaderboard, tmp_path):
    suite = _suite(0.01)
    suite["models"] += [
        {"name": "lightgcn", "params": {"epochs": 5, "min_epochs": 2}, "search": {"lr": [0.001]}},
        {"name": "ease"},
    ]
    suite["datasets"]["small"] = {
        "data": {"name": "ml-100k"},
        "search": {"batch_size": [64, 256], "lr": [0.5]},
        "params": {"min_epochs": 3},
    }
    models = leaderboard.dataset_config(suite, "small")["models"]
    spaces = {m["name"]: m.get("search") for m in models}
    params = {m["name"]: m.get("params") for m in models}
    # a fixed setting of the data set replaces the model's own value and keeps the others
    assert params["lightgcn"] == {"epochs": 5, "min_epochs": 3}
    assert params["bpr"]["min_epochs"] == 3
    assert params["ease"] is None
    # torch models gain the data set's dimensions, in place of their own range of the same setting;
    # a closed-form model has no batches
    assert spaces["lightgcn"] == {"lr": [0.5], "batch_size": [64, 256]}
    assert spaces["bpr"] == {"lr": [0.5], "batch_size": [64, 256]}
    assert spaces["ease"] is None
    # other data sets keep the suite's spaces, so their cells stay current
    assert leaderboard.dataset_config(suite, "ml-100k")["models"][1] == {
        "name": "lightgcn",
        "params": {"epochs": 5, "min_epochs": 2},
        "search": {"lr": [0.001]},
    }
    lines, _ = leaderboard.report_dataset(suite, "small", tmp_path / "runs", tmp_path / "records", "ndcg@20")
    assert "searches `batch_size` over [64, 256] (in place of its own range, if any)" in lines[2]
    assert "every model trained in mini-batches runs with `min_epochs: 3`" in lines[2]


def test_goals_choose_their_model_on_validation_and_state_whether_they_hold(leaderboard, monkeypatch):
    def cell(valid, tests):
        per_seed = [{"seed": s, "test": {"ndcg@20": t}} for s, t in enumerate(tests)]
        return {
            "result": {"valid": {"ndcg@20": valid}, "test": {"ndcg@20": sum(tests) / 3}, "per_seed": per_seed}
        }

    cells = {
        "ease": cell(0.30, [0.20, 0.21, 0.22]),
        "sgl": cell(0.25, [0.30, 0.32, 0.31]),  # far above on test, but not the best on validation
        "alpharec": cell(0.28, [0.201, 0.211, 0.222]),
    }
    monkeypatch.setattr(leaderboard, "finished", lambda suite, name, records: cells)
    suite = _suite(0.01) | {"baselines": ["ease"]}
    suite["models"] += [{"name": "sgl"}, {"name": "alpharec"}]
    suite["goals"] = [
        {"claim": "beat", "against": "ease", "datasets": ["ml-100k"]},
        {"claim": "reach", "against": "ease", "models": ["alpharec"], "datasets": ["ml-100k"]},
        {"claim": "beat", "against": "ease", "models": ["sgl"], "datasets": ["ml-100k"]},
    ]
    rows = [
        line
        for line in leaderboard.goal_lines(suite, "ndcg@20", None)
        if line.startswith("| beat") or line.startswith("| reach")
    ]
    assert rows[0].startswith("| beat ease | ml-100k | alpharec |") and rows[0].endswith("| no |")
    assert rows[1].startswith("| reach ease | ml-100k | alpharec |") and rows[1].endswith("| yes |")
    assert rows[2].startswith("| beat ease | ml-100k | sgl |") and rows[2].endswith("| yes |")
    suite["goals"] = [{"claim": "win", "against": "ease", "datasets": ["ml-100k"]}]
    with pytest.raises(SystemExit, match="'beat' or 'reach'"):
        leaderboard.goal_lines(suite, "ndcg@20", None)


def test_the_report_names_the_settings_chosen_at_an_edge_of_their_space(leaderboard, tmp_path, monkeypatch):
    suite = _suite(0.01) | {"baselines": ["ease"]}
    suite["models"] += [{"name": "ease", "search": {"reg": [1.0, 10.0, 100.0]}}]

    def record(model, valid, chosen):
        entry = next(m for m in suite["models"] if m["name"] == model)
        per_seed = [{"seed": s, "test": {"ndcg@20": valid}} for s in range(3)]
        result = {"valid": {"ndcg@20": valid}, "test": {"ndcg@20": valid}, "per_seed": per_seed}
        return {"config": {"model": entry}, "best_params": chosen, "result": result}

    cells = {"bpr": record("bpr", 0.2, {"lr": 0.0099}), "ease": record("ease", 0.3, {"reg": 10.0})}
    monkeypatch.setattr(leaderboard, "finished", lambda suite, name, records: cells)
    lines, _ = leaderboard.report_dataset(
        suite, "ml-100k", tmp_path / "runs", tmp_path / "records", "ndcg@20"
    )
    edges = [line for line in lines if line.startswith("Chosen at an edge")]
    assert edges == [
        "Chosen at an edge of the search space (the space may have cut the search short): "
        "bpr lr (0.0099, at the high end of [0.001, 0.01])."
    ]
    cells["ease"]["best_params"] = {"reg": 100.0}
    lines, _ = leaderboard.report_dataset(
        suite, "ml-100k", tmp_path / "runs", tmp_path / "records", "ndcg@20"
    )
    assert "ease reg (100, the highest of [1.0, 10.0, 100.0]); bpr lr" in next(
        line for line in lines if line.startswith("Chosen at an edge")
    )


def test_a_blend_cell_takes_its_members_chosen_settings_once_their_cells_are_finished(leaderboard, tmp_path):
    from clarec.config import load_config

    records, runs = tmp_path / "records", tmp_path / "runs"
    suite = _suite(0.01) | {"baselines": ["ease"]}
    suite["models"] += [
        {"name": "lightgcn", "params": {"epochs": 5}, "search": {"lr": [0.001, 0.01]}},
        {"name": "ease"},
        {"name": "blend", "label": "mix", "blend_of": [["bpr", "lightgcn"], "ease"]},
    ]
    suite["goals"] = [{"claim": "beat", "against": "ease", "datasets": ["ml-100k"]}]

    def finish(model, valid, tests, chosen, weights=()):
        per_seed = [{"seed": s, "test": {"ndcg@20": t}} for s, t in enumerate(tests)]
        for seed, w in zip(per_seed, weights, strict=False):
            seed["chosen"] = {"weights": w}
        result = {"valid": {"ndcg@20": valid}, "test": {"ndcg@20": sum(tests) / 3}, "per_seed": per_seed}
        out = runs / "ml-100k" / model
        leaderboard.start_folder(out, leaderboard.cell_config(suite, "ml-100k", model, records))
        (out / "final").mkdir(exist_ok=True)
        (out / "final" / "results.json").write_text(json.dumps({model: result}))
        (out / "tune.json").write_text(json.dumps({"models": {model: {"best_params": chosen}}}))
        assert leaderboard.keep_record(suite, "ml-100k", model, out, records)

    def blend():
        return leaderboard.blend_entry(suite, "ml-100k", suite["models"][-1], records)

    # a member cell unfinished (lightgcn of the first group): the blend waits, out of the run's config
    finish("bpr", 0.20, [0.20, 0.21, 0.22], {"lr": 0.002})
    finish("ease", 0.25, [0.20, 0.21, 0.22], {})
    assert blend() is None
    lines, _ = leaderboard.report_dataset(suite, "ml-100k", runs, records, "ndcg@20")
    assert "Not run yet: lightgcn, mix (a blend: after its members' cells)." in lines
    assert "mix" not in {
        m.get("label") for m in leaderboard.resolved_config(suite, "ml-100k", records)["models"]
    }
    # all finished: the group's best on validation (lightgcn), at the settings its search chose
    finish("lightgcn", 0.24, [0.25, 0.27, 0.26], {"lr": 0.01})
    entry = blend()
    assert entry == {
        "name": "blend",
        "label": "mix",
        "params": {
            "members": [
                {"name": "lightgcn", "params": {"epochs": 5, "lr": 0.01}},
                {"name": "ease", "params": {}},
            ]
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(leaderboard.yaml.safe_dump(leaderboard.resolved_config(suite, "ml-100k", records)))
    assert "mix" in [m.key for m in load_config(path).models]  # what `clarec tune` reads
    # its record is taken under its members' settings: a member tuned again makes it stale
    finish("mix", 0.30, [0.30, 0.32, 0.31], {})
    assert leaderboard.cell_record(suite, "ml-100k", "mix", records) is not None
    finish("lightgcn", 0.24, [0.25, 0.27, 0.26], {"lr": 0.001})
    assert leaderboard.cell_record(suite, "ml-100k", "mix", records) is None
    finish("mix", 0.30, [0.30, 0.32, 0.31], {}, weights=[[0.7, 0.3], [0.5, 0.5], [1.0, 0.0]])
    # the report marks it and tests it; a goal takes it only when it names it
    lines, row = leaderboard.report_dataset(suite, "ml-100k", runs, records, "ndcg@20")
    row_of_mix = next(line for line in lines if line.startswith("| mix (blend) | 0.3000 |"))
    assert row_of_mix.endswith(
        "| of lightgcn and ease; weights by seed (chosen on validation): 0.7/0.3, 0.5/0.5, 1/0 |"
    )
    assert row.startswith("| ml-100k | mix 0.3100 | ease |") and "mix" in row.split("|")[4]
    goal = [line for line in leaderboard.goal_lines(suite, "ndcg@20", records) if line.startswith("| beat")]
    assert goal[0].startswith("| beat ease | ml-100k | lightgcn |")
    suite["goals"][0]["models"] = ["mix", "lightgcn"]
    goal = [line for line in leaderboard.goal_lines(suite, "ndcg@20", records) if line.startswith("| beat")]
    assert goal[0].startswith("| beat ease | ml-100k | mix |")


def test_a_blend_cell_takes_its_members_fits_from_their_cells_instead_of_training_them_again(
    leaderboard, tmp_path
):
    from factories import make_random_dataset, write_events

    from clarec.config import load_config
    from clarec.experiment.runner import run_experiment

    records, runs = tmp_path / "records", tmp_path / "runs"
    events = write_events(make_random_dataset(n_users=30, n_items=25, per_user=8, seed=1), tmp_path / "e.csv")
    lightgcn = {"epochs": 2, "embedding_dim": 8, "progress": False, "num_threads": 1}
    suite = _suite(0.01) | {"seeds": 2}
    suite["models"] = [
        {"name": "lightgcn", "params": lightgcn, "search": {"lr": [0.001, 0.01]}},
        {"name": "ease"},
        {"name": "blend", "label": "mix", "blend_of": ["lightgcn", "ease"]},
    ]
    suite["datasets"] = {
        "tiny": {
            "data": {"source": "tabular", "path": str(events)},
            "split": {"method": "random", "ratios": [0.6, 0.2, 0.2]},
        }
    }

    def final_run(model, chosen):
        """A cell's final run as `clarec tune` makes it: its model at the chosen settings, 2 seeds."""
        out = runs / "tiny" / model
        leaderboard.start_folder(out, leaderboard.cell_config(suite, "tiny", model, records))
        config = leaderboard.resolved_config(suite, "tiny", records)
        entry = next(m for m in config["models"] if (m.get("label") or m["name"]) == model)
        entry = entry | {"params": entry.get("params", {}) | chosen}
        entry.pop("search", None)
        path = out / "config.yaml"
        path.write_text(leaderboard.yaml.safe_dump(config | {"models": [entry]}))
        result = run_experiment(load_config(path), out / "final", seeds=2, split_seeds=True, resume=True)
        (out / "tune.json").write_text(json.dumps({"models": {model: {"best_params": chosen}}}))
        assert leaderboard.keep_record(suite, "tiny", model, out, records)
        return result[model]

    mix = runs / "tiny" / "mix"

    def reuse():  # as `run` does before it starts a cell's search
        leaderboard.start_folder(mix, leaderboard.cell_config(suite, "tiny", "mix", records))
        leaderboard.reuse_member_fits(suite, "tiny", "mix", mix, runs, records)
        return sorted(str(p.relative_to(mix)) for p in mix.rglob("*.pt"))

    final_run("lightgcn", {"lr": 0.01})
    assert reuse() == []  # a member cell unfinished: nothing to take yet
    final_run("ease", {})
    # a member cell's folder of another config is not taken
    stamp = runs / "tiny" / "lightgcn" / ".stamp.json"
    kept = stamp.read_text()
    stamp.write_text("{}")
    assert reuse() == []
    stamp.write_text(kept)
    expected = [
        f"final/train/mix/seed-{s}/0-lightgcn/{f}" for s in (2024, 2025) for f in ("best.pt", "last.pt")
    ]
    assert reuse() == expected  # ease has no fit to take; the cell's seed results stay
    assert not list(mix.rglob("result.json"))
    # the blend's run resumes each taken fit as finished: no epoch is trained again
    blend = final_run("mix", {})
    for seed in (2024, 2025):
        log = (mix / "final" / "train" / "mix" / f"seed-{seed}" / "0-lightgcn" / "log.txt").read_text()
        assert "resumed after epoch 2 (finished)" in log and "epoch 1 loss" not in log.split("resumed")[-1]
    assert len(blend["per_seed"]) == 2
    # a seed whose member folder exists is left as it is
    last = mix / "final" / "train" / "mix" / "seed-2024" / "0-lightgcn" / "last.pt"
    before = last.stat().st_mtime_ns
    assert reuse() == expected and last.stat().st_mtime_ns == before


def test_cost_is_measured_at_the_middle_of_each_search_space():
    cost = load_benchmark("leaderboard_cost")
    assert cost.middle([64, 512, 2048]) == 512 and cost.middle([1, 2]) == 1
    assert cost.middle({"low": 0.0001, "high": 0.01, "log": True}) == pytest.approx(0.001)
    assert cost.middle({"low": 0.1, "high": 0.5}) == pytest.approx(0.3)
    assert cost.middle({"low": 10, "high": 400, "log": True}) == 63


def test_a_data_set_out_of_scope_is_reported_with_its_reason_and_runs_only_when_named(
    leaderboard, tmp_path, monkeypatch
):
    from types import SimpleNamespace

    suite = _suite(0.01)
    spec = suite["datasets"]["ml-100k"]
    spec |= {"not_run": "too large here", "skip": {"bpr": "too slow"}}
    lines, row = leaderboard.report_dataset(
        suite, "ml-100k", tmp_path / "runs", tmp_path / "records", "ndcg@20"
    )
    assert lines[-1] == "Not run: too large here." and "not run" in row
    del spec["not_run"]
    lines, _ = leaderboard.report_dataset(
        suite, "ml-100k", tmp_path / "runs", tmp_path / "records", "ndcg@20"
    )
    assert lines[-3:] == ["Not run yet.", "", "- skipped: bpr — too slow."]
    # `run` leaves an out-of-scope data set alone unless it is named
    spec["not_run"] = "too large here"
    args = SimpleNamespace(
        suite=None, datasets=None, runs=tmp_path / "runs", models=None, records=tmp_path / "r"
    )
    monkeypatch.setattr(leaderboard, "load_suite", lambda path: suite)
    leaderboard.run(args)
    assert not (tmp_path / "runs" / "ml-100k").exists()


def test_a_cell_is_kept_trial_by_trial_and_seed_by_seed_and_goes_on_in_a_fresh_folder(
    leaderboard, tmp_path, monkeypatch
):
    import shutil
    from types import SimpleNamespace

    suite, records = _suite(0.01) | {"trials": 3}, tmp_path / "records"
    trial = {"state": "COMPLETE", "params": {"lr": 0.002}, "distributions": {}, "value": 0.1, "curve": {}}
    out = tmp_path / "runs" / "ml-100k" / "bpr"
    seen = []

    class Tune:  # stands for `clarec tune`: it finds what was kept, adds a trial (then a seed), is stopped
        def __init__(self, cmd):
            kept = json.loads((out / "trials.json").read_text()) if (out / "trials.json").exists() else {}
            seeds = sorted(p.parent.name for p in out.glob("final/train/bpr/seed-*/result.json"))
            seen.append((len(kept.get("bpr", [])), seeds))
            trials = [*kept.get("bpr", []), trial | {"value": len(kept.get("bpr", []))}]
            (out / "trials.json").write_text(json.dumps({"bpr": trials}))
            if len(trials) == 2:  # the search is done: the final run's first seed lands
                (out / "final" / "train" / "bpr" / "seed-2024").mkdir(parents=True)
                (out / "final" / "config.yaml").write_text("chosen: 1\n")
                (out / "final" / "train" / "bpr" / "seed-2024" / "result.json").write_text('{"result": 1}')
            self.calls = 0

        def wait(self, timeout=None):
            self.calls += 1
            if self.calls == 1:  # still running: the poll keeps what has landed
                raise leaderboard.subprocess.TimeoutExpired("tune", timeout)
            return 1

    monkeypatch.setattr(leaderboard.subprocess, "Popen", Tune)
    monkeypatch.setattr(leaderboard, "load_suite", lambda path: suite)
    args = SimpleNamespace(suite=None, datasets=None, runs=tmp_path / "runs", models=None, records=records)
    for _ in range(3):  # three sessions, each on a machine without the last one's run folder
        with pytest.raises(SystemExit, match="failed with exit status 1"):
            leaderboard.run(args)
        shutil.rmtree(tmp_path / "runs")
    assert seen == [(0, []), (1, []), (2, ["seed-2024"])]
    kept = leaderboard.kept_progress(suite, "ml-100k", "bpr", records)
    assert [t["value"] for t in kept["trials"]] == [0, 1, 2]
    assert kept["final"] == {"config": "chosen: 1\n", "seeds": {"seed-2024": {"result": 1}}}
    lines, _ = leaderboard.report_dataset(suite, "ml-100k", tmp_path / "runs", records, "ndcg@20")
    assert lines[-1] == "Not run yet."  # no finished cell at all
    # kept under another search space, nothing is used
    assert leaderboard.kept_progress(_suite(0.1) | {"trials": 3}, "ml-100k", "bpr", records) == {
        "trials": [],
        "final": {},
    }
    # the report says how far an unfinished cell is, beside a finished one
    suite["models"].append({"name": "ease"})
    done = tmp_path / "runs" / "ml-100k" / "ease"
    leaderboard.start_folder(done, leaderboard.cell_config(suite, "ml-100k", "ease", records))
    (done / "final").mkdir()
    (done / "final" / "results.json").write_text(
        json.dumps({"ease": {"valid": {"ndcg@20": 0.3}, "test": {"ndcg@20": 0.3}}})
    )
    assert leaderboard.keep_record(suite, "ml-100k", "ease", done, records)
    lines, _ = leaderboard.report_dataset(suite, "ml-100k", tmp_path / "runs", records, "ndcg@20")
    assert "Not run yet: bpr (3 of 3 trials, 1 of 1 final seeds kept)." in lines
