from __future__ import annotations

import re

import pandas as pd
import pytest
from factories import make_random_dataset, write_events

from clarec.config import load_config
from clarec.data.split import random_split
from clarec.errors import ConfigError
from clarec.experiment.runner import attach_train_tags, item_features, prepare_data


def test_train_only_tags_do_not_leak():
    ds = make_random_dataset(n_users=10, n_items=12, per_user=6, seed=2)
    split = random_split(ds, seed=0)
    tr, te = split.train.interactions.iloc[0], split.test.interactions.iloc[0]
    tr_u, tr_i = ds.user_ids[tr["user"]], ds.item_ids[tr["item"]]
    te_u, te_i = ds.user_ids[te["user"]], ds.item_ids[te["item"]]
    tags = pd.DataFrame(
        {
            "user_id": [tr_u, tr_u, te_u, "stranger"],
            "item_id": [tr_i, tr_i, te_i, tr_i],
            "tag": [" Funny", "funny", "spoiler", "unknown-user"],
        }
    )
    assert attach_train_tags(split, tags) == 1
    col = split.test.items["tags"]  # shared item table
    assert col.iloc[tr["item"]] == ["funny"]
    assert all("spoiler" not in t for t in col)
    assert sum(len(t) for t in col) == 1


def test_item_features_from_genres():
    ds = make_random_dataset(n_users=3, n_items=4, per_user=2)
    ds.items["genres"] = [["a", "b"], ["b"], [], ["c"]]
    f = item_features(ds)
    assert f.shape == (4, 3) and f.toarray().tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]]
    ds.items = ds.items.drop(columns="genres")
    assert item_features(ds) is None


def test_tags_policy_validated(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {name: ml-latest-small, tags: everything}\nmodels: [{name: popularity}]\n")
    with pytest.raises(ConfigError, match="data.tags"):
        prepare_data(load_config(p))


def test_ml_latest_small_train_tags(real_data_root, tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "data: {name: ml-latest-small, min_rating: 4, tags: train_only}\n"
        "split: {method: cold_start, cold_share: 0.2}\nmodels: [{name: popularity}]\n"
    )
    data = prepare_data(load_config(p))
    tags = data.split.train.items["tags"]
    cold = set(data.split.cold_items.tolist())
    # No cold item can carry a tag: none of its pairs is in training.
    assert all(len(tags.iloc[i]) == 0 for i in cold)
    assert sum(len(t) > 0 for t in tags) > 100


def test_segments_are_averaged_over_seeds_and_tabulated():
    from clarec.experiment.report import results_table
    from clarec.experiment.runner import _aggregate

    def seed(s, cold, cold_only):
        seg = {"cold_items": {"ndcg@20": cold, "recall@20": cold, "users": 10.0}}
        seg["cold_only"] = {"ndcg@20": cold_only, "recall@20": cold_only, "users": 10.0}
        test = {"ndcg@20": 0.5, "recall@20": 0.5}
        return {"seed": s, "valid": test, "test": test, "segments": seg, "fit_seconds": 1.0}

    agg = _aggregate([seed(1, 0.1, 0.3), seed(2, 0.2, 0.5), seed(3, 0.3, 0.4)])
    assert agg["segments"]["cold_items"]["ndcg@20"] == pytest.approx(0.2)
    assert agg["segments_std"]["cold_only"]["recall@20"] == pytest.approx(0.1)
    assert [r["segments"]["cold_items"]["ndcg@20"] for r in agg["per_seed"]] == [0.1, 0.2, 0.3]
    text = results_table({"m": agg}, ks=[20])
    assert "| m | 0.2000 ± 0.1000 | 0.2000 ± 0.1000 | 0.4000 ± 0.1000 | 0.4000 ± 0.1000 |" in text
    assert "cold items, ranked among the cold items only (10 users)" in text
    # no cold segments: no segment table
    plain = _aggregate([{k: v for k, v in seed(1, 0.1, 0.1).items() if k != "segments"}] * 2)
    assert "Segments" not in results_table({"m": plain}, ks=[20])
    # the long tail gets its own table at the largest K
    tail = seed(1, 0.1, 0.1) | {
        "segments": {
            f"items_{b}": {"ndcg@10": 0.1, "recall@10": 0.2, "ndcg@20": v, "recall@20": v, "users": 7.0}
            for b, v in (("head", 0.6), ("mid", 0.3), ("tail", 0.05))
        }
    }
    text = results_table({"m": _aggregate([tail, tail])}, ks=[10, 20])
    assert "| model | recall@20 (items_head) | ndcg@20 (items_head) | recall@20 (items_mid)" in text
    assert (
        "| m | 0.6000 ± 0.0000 | 0.6000 ± 0.0000 | 0.3000 ± 0.0000 | 0.3000 ± 0.0000 | 0.0500 ± 0.0000 | 0.0500 ± 0.0000 |"
        in text
    )
    assert "items_tail: the long tail, the last third (items unseen in training included) (7 users)" in text


def test_next_item_run_reports_both_conventions(tmp_path):
    import json

    import numpy as np

    from clarec.experiment.runner import run_experiment

    rng = np.random.default_rng(0)
    lines = []
    for u in range(1, 41):  # users walk a ring of 15 items
        start = int(rng.integers(15))
        lines.append(" ".join([str(u)] + [str(1 + (start + t) % 15) for t in range(int(rng.integers(5, 9)))]))
    (tmp_path / "Ring.txt").write_text("\n".join(lines) + "\n")
    p = tmp_path / "c.yaml"
    p.write_text(
        f"name: ring\ndata: {{source: s3rec, path: {tmp_path / 'Ring.txt'}}}\nsplit: {{method: leave_one_out}}\n"
        "models:\n  - name: popularity\n  - name: sasrec\n    params: {embedding_dim: 16, inner_size: 32, "
        "dropout: 0.1, lr: 0.01, epochs: 30, batch_size: 16, progress: false, num_threads: 1}\n"
        "evaluation: {ks: [1, 5], history_items: [masked, kept], test_input: train+valid}\n"
    )
    results = run_experiment(load_config(p), tmp_path / "run", seeds=2, save_models=False)
    seq = results["sasrec"]
    assert set(seq["conventions"]) == {"kept"} and len(seq["per_seed"]) == 2
    kept = seq["conventions"]["kept"]["test"]["hit@5"]
    assert kept == pytest.approx(
        np.mean([r["conventions"]["kept"]["test"]["hit@5"] for r in seq["per_seed"]])
    )
    # the ring is learned: the next item comes first with the validation item read as input
    assert seq["test"]["hit@1"] > 0.9 and kept > 0.9
    # popularity under "kept" recommends items the user already has
    assert (
        results["popularity"]["conventions"]["kept"]["test"]["hit@5"]
        <= results["popularity"]["test"]["hit@5"]
    )
    table = (tmp_path / "run" / "results.md").read_text()
    assert "History items kept:" in table and "History items masked (main table)" in table
    assert "read the validation item when tested" in table
    assert "repeat interactions" not in table and "test_unreachable" not in seq  # no repeat on a walk
    assert json.loads((tmp_path / "run" / "results.json").read_text())["sasrec"]["conventions_std"]["kept"]
    with pytest.raises(ConfigError, match="history_items"):
        load_config_text = p.read_text().replace("[masked, kept]", "[masked, masked]")
        p.write_text(load_config_text)
        load_config(p)


def test_targets_repeating_a_history_item_are_reported_under_the_masked_convention(tmp_path, caplog):
    import json
    import logging

    from clarec.experiment.runner import run_experiment

    # 12 users walk 5 items of a ring of 15; the first 3 end by buying their fourth item again
    lines = [
        " ".join(
            [str(u)] + [str(1 + (u + t) % 15) for t in range(4)] + [str(1 + (u + (3 if u <= 3 else 4)) % 15)]
        )
        for u in range(1, 13)
    ]
    (tmp_path / "Ring.txt").write_text("\n".join(lines) + "\n")
    p = tmp_path / "c.yaml"
    p.write_text(
        f"name: ring\ndata: {{source: s3rec, path: {tmp_path / 'Ring.txt'}}}\nsplit: {{method: leave_one_out}}\n"
        "models:\n  - name: popularity\nevaluation: {ks: [5], history_items: [masked, kept]}\n"
    )
    with caplog.at_level(logging.WARNING, logger="clarec.run"):
        results = run_experiment(load_config(p), tmp_path / "run", seeds=1, save_models=False)
    assert results["popularity"]["test_unreachable"] == {"targets": 3, "of": 12, "users": 3, "of_users": 12}
    assert "3 of 12 test targets (25%)" in caplog.text
    table = (tmp_path / "run" / "results.md").read_text()
    assert "Note: history items masked: 3 of 12 test targets (25%)" in table
    saved = json.loads((tmp_path / "run" / "results.json").read_text())["popularity"]
    assert saved["test_unreachable"]["targets"] == 3
    from clarec.experiment.html_report import write_report

    assert "Note: history items masked: 3 of 12 test targets" in write_report(tmp_path / "run").read_text()
    # masked listed second: the count was left out of results.json, results.md and the report
    p.write_text(p.read_text().replace("[masked, kept]", "[kept, masked]"))
    second = run_experiment(load_config(p), tmp_path / "run2", seeds=1, save_models=False)["popularity"]
    assert second["test_unreachable"]["targets"] == 3 and second["history_items"] == "kept"
    assert (
        "Note: history items masked: 3 of 12 test targets" in (tmp_path / "run2" / "results.md").read_text()
    )
    assert "Note: history items masked: 3 of 12" in write_report(tmp_path / "run2").read_text()
    # a model that reads a history as it is, tested from training histories on leave-one-out: said
    assert "next-item protocol" not in caplog.text  # popularity reads no history
    p.write_text(p.read_text().replace("name: popularity", "name: ease"))
    with caplog.at_level(logging.WARNING, logger="clarec.run"):
        run_experiment(load_config(p), tmp_path / "run-ease", seeds=1, save_models=False)
    assert "ease score a history as it is, but are tested from their training histories" in caplog.text


def random_split_config(tmp_path, models: str):
    """A config over a small random data set (30 users, 25 items), 60:20:20 random split."""
    folder = tmp_path / "data"
    folder.mkdir()
    write_events(make_random_dataset(n_users=30, n_items=25, per_user=8, seed=1), folder / "events.csv")
    p = tmp_path / "c.yaml"
    p.write_text(
        f"data: {{source: tabular, path: {folder / 'events.csv'}}}\n"
        f"split: {{method: random, ratios: [0.6, 0.2, 0.2]}}\nmodels: {models}\n"
    )
    return p


@pytest.mark.parametrize(("conventions", "excluded"), [("[kept, masked]", False), ("[masked, kept]", True)])
def test_torch_models_validate_under_the_main_tables_convention(
    tmp_path, validator_spy, conventions, excluded
):
    from clarec.experiment.runner import run_experiment

    p = random_split_config(tmp_path, "[{name: bpr, params: {epochs: 2, progress: false, num_threads: 1}}]")
    p.write_text(p.read_text() + f"evaluation: {{ks: [5], history_items: {conventions}}}\n")
    run_experiment(load_config(p), tmp_path / "run", seeds=1, save_models=False)
    assert validator_spy == [excluded]


def test_split_seeds_draw_a_split_per_seed_and_validation_segments_are_kept(tmp_path):
    import json

    from clarec.experiment.runner import run_experiment

    p = random_split_config(tmp_path, "[{name: popularity}]")
    fixed = run_experiment(load_config(p), tmp_path / "fixed", seeds=2, save_models=False)["popularity"]
    drawn = run_experiment(load_config(p), tmp_path / "drawn", seeds=2, save_models=False, split_seeds=True)
    drawn = drawn["popularity"]
    # popularity has no seed: on one split both seeds agree, on two draws they differ
    assert fixed["per_seed"][0]["test"] == fixed["per_seed"][1]["test"] and "split_seeds" not in fixed
    assert drawn["per_seed"][0]["test"] != drawn["per_seed"][1]["test"] and drawn["split_seeds"] == [
        2024,
        2025,
    ]
    assert drawn["per_seed"][0]["test"] == fixed["per_seed"][0]["test"]  # the first draw is the config's
    split_a = (tmp_path / "drawn" / "split" / "test.tsv").read_text()
    assert split_a != (tmp_path / "drawn" / "splits" / "seed-2025" / "test.tsv").read_text()
    assert set(drawn["valid_segments"]) >= {"activity_q1", "activity_q4"}
    saved = json.loads((tmp_path / "drawn" / "results.json").read_text())["popularity"]
    assert saved["per_seed"][1]["split_seed"] == 2025 and "valid_segments" in saved["per_seed"][1]
    assert "seeds (each draws the split too): [2024, 2025]" in (tmp_path / "drawn" / "results.md").read_text()
    # a split that draws nothing at random (leave-one-out without new items) is one split for every
    # seed: it was reported as drawn per seed
    p.write_text(
        p.read_text().replace("{method: random, ratios: [0.6, 0.2, 0.2]}", "{method: leave_one_out}")
    )
    same = run_experiment(load_config(p), tmp_path / "same", seeds=2, save_models=False, split_seeds=True)
    assert "split_seeds" not in same["popularity"]
    assert "split_seed" not in same["popularity"]["per_seed"][1]
    assert "seeds: [2024, 2025]" in (tmp_path / "same" / "results.md").read_text()
    assert "the seeds vary the models only" in (tmp_path / "same" / "log.txt").read_text()


def test_what_a_fit_chose_on_validation_is_kept_per_seed(tmp_path):
    import json

    from clarec.experiment.runner import run_experiment

    members = "[{name: ease, params: {reg: 10.0}}, popularity]"
    p = random_split_config(
        tmp_path, f"[{{name: blend, params: {{members: {members}, grid: 4}}}}, {{name: ease}}]"
    )
    out = run_experiment(load_config(p), tmp_path / "run", seeds=2, save_models=False, split_seeds=True)
    chosen = [r["chosen"]["weights"] for r in out["blend"]["per_seed"]]
    assert len(chosen) == 2 and all(len(w) == 2 and sum(w) == pytest.approx(1.0) for w in chosen)
    assert all(round(w[0] * 4) == w[0] * 4 for w in chosen)  # points of the grid
    assert all("chosen" not in r for r in out["ease"]["per_seed"])  # a model that chooses nothing
    seed = json.loads((tmp_path / "run" / "train" / "blend" / "seed-2025" / "result.json").read_text())
    assert seed["result"]["chosen"]["weights"] == chosen[1]
    table = (tmp_path / "run" / "results.md").read_text()
    shown = " / ".join(f"{w:.3g}" for w in chosen[1])
    assert "Chosen on validation within each fit:" in table
    assert f"members ease / popularity, weights {shown} (seed 2025)" in table


def test_a_blend_takes_the_fits_of_its_members_that_are_models_of_the_same_run(tmp_path):
    import json

    from clarec.experiment.runner import run_experiment

    gcn = "{name: lightgcn, params: {epochs: 2, embedding_dim: 8, num_threads: 1}}"
    p = random_split_config(
        tmp_path,
        f"[{gcn}, {{name: ease, params: {{reg: 10.0}}}},"
        f" {{name: blend, label: mix, params: {{members: [{gcn}, {{name: ease, params: {{reg: 10.0}}}}]}}}},"
        f" {{name: blend, label: other, params: {{members: [{gcn}, {{name: ease, params: {{reg: 20.0}}}}]}}}}]",
    )
    out = run_experiment(load_config(p), tmp_path / "run", seeds=2, save_models=False, split_seeds=True)
    for seed in (0, 1):
        # same name and settings (defaults written out or not): the run's own fit of that seed
        assert out["mix"]["per_seed"][seed]["members_fitted_by"] == {"0": "lightgcn", "1": "ease"}
        assert out["other"]["per_seed"][seed]["members_fitted_by"] == {"0": "lightgcn"}  # ease: other reg
    train = tmp_path / "run" / "train"
    assert not (train / "mix" / "seed-2024" / "0-lightgcn").exists()  # not trained again
    assert (train / "lightgcn" / "seed-2025" / "log.txt").is_file()
    assert not (train / "other" / "seed-2025" / "0-lightgcn").exists()
    seed = json.loads((train / "mix" / "seed-2025" / "result.json").read_text())["result"]
    assert seed["members_fitted_by"] == {"0": "lightgcn", "1": "ease"}  # kept with the seed's result


def test_results_table_tests_each_model_against_the_best_over_seeds():
    from clarec.config import ExperimentConfig
    from clarec.experiment.report import results_table
    from clarec.experiment.runner import _aggregate

    def run(values):
        return _aggregate(
            [
                {"seed": s, "valid": {"ndcg@20": v}, "test": {"ndcg@20": v}, "fit_seconds": 1.0}
                for s, v in values
            ]
        )

    results = {"a": run([(1, 0.30), (2, 0.32), (3, 0.31)]), "b": run([(1, 0.20), (2, 0.23), (3, 0.21)])}
    cfg = ExperimentConfig(data={"name": "x"}, models=[{"name": "ease"}])
    text = results_table(results, cfg, ks=[20])
    assert "against the best validation mean (a)" in text
    assert "- b − a: -0.0967 (p = " in text and "3 seeds)" in text
    # one test against the reference: Holm's adjustment leaves its p as it is
    p = re.search(r"b − a: -0.0967 \(p = ([0-9.e-]+), Holm ([0-9.e-]+);", text)
    assert p and p.group(1) == p.group(2)
    three = results | {"c": run([(1, 0.29), (2, 0.32), (3, 0.30)])}
    line = next(x for x in results_table(three, cfg, ks=[20]).splitlines() if x.startswith("- b − a"))
    raw, adjusted = (float(v) for v in re.search(r"p = ([0-9.e-]+), Holm ([0-9.e-]+)", line).groups())
    assert adjusted == pytest.approx(min(1.0, 2 * raw), rel=0.05)  # the smaller of two p-values, doubled
    # the reference is the best on validation, even where another model is better on test
    results["b"]["valid"]["ndcg@20"] = 0.5
    text = results_table(results, cfg, ks=[20])
    assert "against the best validation mean (b)" in text and "- a − b: +0.0967" in text
    two = {"a": run([(1, 0.30), (2, 0.32)]), "b": run([(1, 0.20), (2, 0.23)])}
    # the t interval of two seeds: -0.095 ± t(0.975, 1)·0.005 (a bootstrap gave the two differences)
    assert "95% t interval [-0.1585, -0.0315], 2 seeds" in results_table(two, cfg, ks=[20])
    one = {
        "a": results["a"]["per_seed"][0] | {"fit_seconds": 1.0},
        "b": results["b"]["per_seed"][0] | {"fit_seconds": 1.0},
    }
    assert "Paired t-tests" not in results_table(one, cfg, ks=[20])
    assert "No paired tests: each model has one seed" in results_table(one, cfg, ks=[20])
    # the same figures on every seed (deterministic models, one split): said, not tested
    fixed = {"a": run([(1, 0.30), (2, 0.30)]), "b": run([(1, 0.25), (2, 0.25)])}
    text = results_table(fixed, cfg, ks=[20])
    assert "- b − a: -0.0500, the same on each of 2 seeds" in text and "p = " not in text
    # a seed whose figure is NaN is not paired (it made the table raise): b keeps two of its three
    nan_seed = {
        "a": run([(1, 0.30), (2, 0.32), (3, 0.31)]),
        "b": run([(1, 0.20), (2, 0.23), (3, float("nan"))]),
    }
    assert "- b − a: -0.0950 (p = " in results_table(nan_seed, cfg, ks=[20])
    nan_seed["b"] = run([(1, 0.20), (2, float("nan")), (3, float("nan"))])
    assert "b − a" not in results_table(nan_seed, cfg, ks=[20])


def test_user_sample_in_the_config_reaches_results(tmp_path):
    import json

    from clarec.experiment.runner import run_experiment

    write_events(make_random_dataset(n_users=60, n_items=25, per_user=8, seed=2), tmp_path / "events.csv")
    p = tmp_path / "c.yaml"
    p.write_text(
        f"data: {{source: tabular, path: {tmp_path / 'events.csv'}}}\n"
        "split: {method: random, ratios: [0.6, 0.2, 0.2]}\nmodels: [{name: popularity}]\n"
        "evaluation: {ks: [10], user_sample: 20, sample_seed: 5}\n"
    )
    run_experiment(load_config(p), tmp_path / "run", save_models=False)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())["popularity"]
    assert saved["test_sample"]["users"] == 20 and saved["test_sample"]["seed"] == 5
    assert saved["test_ci95"]["ndcg@10"] > 0
    assert "random sample of 20 users (seed 5)" in (tmp_path / "run" / "results.md").read_text()
    p.write_text(p.read_text().replace("user_sample: 20", "user_sample: 1"))
    with pytest.raises(ConfigError, match="user_sample"):
        load_config(p)


def test_llm_rerank_test_cost_reaches_results(tmp_path, tiny_llm_dir):
    import json

    from clarec.experiment.runner import run_experiment

    ds = make_random_dataset(n_users=30, n_items=20, per_user=6, seed=3)
    write_events(ds, tmp_path / "events.csv")
    titles = ["item_id,title"] + [f"{i},Film number {k}" for k, i in enumerate(ds.item_ids)]
    (tmp_path / "items.csv").write_text("\n".join(titles) + "\n")
    p = tmp_path / "c.yaml"
    p.write_text(
        f"data: {{source: tabular, path: {tmp_path / 'events.csv'}, item_file: items.csv}}\n"
        "split: {method: random, ratios: [0.6, 0.2, 0.2]}\nmodels:\n  - name: popularity\n"
        f"  - name: llm-rerank\n    params: {{base: popularity, top_n: 3, generator: {tiny_llm_dir}, "
        f"cache_dir: {tmp_path / 'llm'}, max_new_tokens: 4}}\n"
        "evaluation: {ks: [5], user_sample: 8}\n"
    )
    run_experiment(load_config(p), tmp_path / "run", seeds=2, save_models=False)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "eval_cost" not in saved["popularity"]
    per_seed = [r["eval_cost"] for r in saved["llm-rerank"]["per_seed"]]
    assert [c["users"] for c in per_seed] == [16, 16]  # 8 sampled users in validation, 8 in test
    # one prompt per distinct user (a user in both parts gets the same prompt); seed 2025 has the same
    # split and base list, so every answer comes from the cache
    assert 8 <= per_seed[0]["prompts"] <= 16 and per_seed[1]["prompts"] == 0 and per_seed[0]["tokens"] > 0
    total = saved["llm-rerank"]["eval_cost"]
    assert total["users"] == 32 and total["prompts"] == per_seed[0]["prompts"]
    text = (tmp_path / "run" / "results.md").read_text()
    assert (
        f"- llm-rerank: 32 users scored (validation and test), {total['prompts']} prompts generated" in text
    )


def test_a_seed_finished_elsewhere_is_read_back_only_for_its_own_config(tmp_path, monkeypatch):
    import json
    import shutil

    from clarec.experiment.runner import run_experiment
    from clarec.models.ease import EASE

    p = random_split_config(tmp_path, "[{name: ease, params: {reg: 10.0}}]")
    first = run_experiment(load_config(p), tmp_path / "a", seeds=2, split_seeds=True)["ease"]
    # another machine: only the second seed's result file came along
    kept = tmp_path / "b" / "train" / "ease" / "seed-2025"
    shutil.copytree(tmp_path / "a" / "train" / "ease" / "seed-2025", kept)
    fits = []
    real_fit = EASE.fit
    monkeypatch.setattr(EASE, "fit", lambda self, *a, **kw: fits.append(1) or real_fit(self, *a, **kw))
    again = run_experiment(load_config(p), tmp_path / "b", seeds=2, split_seeds=True, resume=True)["ease"]
    assert len(fits) == 1 and again["per_seed"][1] == first["per_seed"][1]  # read back whole
    assert again["per_seed"][0]["test"] == first["per_seed"][0]["test"]  # fitted again: the same figures
    # without resume (a folder with the kept seed and no run yet), or under another setting, the seed
    # is fitted again; without resume, a folder holding a run is refused
    shutil.copytree(kept, tmp_path / "c" / "train" / "ease" / "seed-2025")
    run_experiment(load_config(p), tmp_path / "c", seeds=2, split_seeds=True)
    assert len(fits) == 3
    with pytest.raises(ConfigError, match="holds an earlier run"):
        run_experiment(load_config(p), tmp_path / "b", seeds=2, split_seeds=True)
    # resuming a run as another one is refused, its files as they were (another config, other seeds)
    before = (tmp_path / "b" / "results.json").read_text()
    p.write_text(p.read_text().replace("reg: 10.0", "reg: 20.0"))
    with pytest.raises(ConfigError, match="holds a run of another config \\(it differs in: models\\)"):
        run_experiment(load_config(p), tmp_path / "b", seeds=2, split_seeds=True, resume=True)
    p.write_text(p.read_text().replace("reg: 20.0", "reg: 10.0"))
    with pytest.raises(ConfigError, match="holds a run of --seeds 2 --split-seeds"):
        run_experiment(load_config(p), tmp_path / "b", seeds=1, resume=True)
    with pytest.raises(ConfigError, match="holds a run of --seeds 2 --split-seeds"):
        run_experiment(load_config(p), tmp_path / "b", seeds=2, resume=True)
    assert (tmp_path / "b" / "results.json").read_text() == before and len(fits) == 3
    # a seed kept under another setting, carried to a folder without a run: fitted again
    shutil.copytree(kept, tmp_path / "d" / "train" / "ease" / "seed-2025")
    p.write_text(p.read_text().replace("reg: 10.0", "reg: 20.0"))
    changed = run_experiment(load_config(p), tmp_path / "d", seeds=2, split_seeds=True, resume=True)["ease"]
    assert len(fits) == 5 and changed["per_seed"][1]["test"] != first["per_seed"][1]["test"]
    saved = json.loads((tmp_path / "d" / "train" / "ease" / "seed-2025" / "result.json").read_text())
    assert saved["made_under"]["config"]["models"][0]["params"] == {"reg": 20.0}


def test_a_seed_kept_before_a_config_setting_existed_is_read_back(tmp_path, monkeypatch):
    """A setting added to the config schema since a seed was kept (its key lacks it) counts at its
    default: the seed is read back, not fitted again; a setting that differs, or a key that is not a
    config any more, still means fitting again."""
    import json

    from clarec.experiment.runner import run_experiment
    from clarec.models.ease import EASE

    p = random_split_config(tmp_path, "[{name: ease, params: {reg: 10.0}}]")
    first = run_experiment(load_config(p), tmp_path / "a", seeds=1)["ease"]
    result = tmp_path / "a" / "train" / "ease" / "seed-2024" / "result.json"
    saved = json.loads(result.read_text())
    fits = []
    real_fit = EASE.fit
    monkeypatch.setattr(EASE, "fit", lambda self, *a, **kw: fits.append(1) or real_fit(self, *a, **kw))

    def again(key: dict) -> dict:
        result.write_text(json.dumps({**saved, "made_under": key}))
        return run_experiment(load_config(p), tmp_path / "a", seeds=1, resume=True)["ease"]

    older = json.loads(json.dumps(saved["made_under"]))
    del older["config"]["evaluation"]["device"], older["config"]["tuning"]["split_seeds"]  # not yet there
    assert again(older)["test"] == first["test"] and fits == []
    older["config"]["evaluation"]["batch_size"] = 7  # an explicit other setting
    again(older)
    assert len(fits) == 1
    older["config"]["evaluation"]["no_such_setting"] = 1  # a key today's schema refuses
    again(older)
    assert len(fits) == 2


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{name: tfidf, params: {fields: [plot]}}", r"tfidf: item table has no column\(s\) \['plot'\]"),
        ("{name: lm-content, params: {encoder: ./no/such/encoder}}", "text model folder not found"),
        ("{name: sasrec, params: {attributes: brand}}", r"sasrec: item table has no column\(s\) \['brand'\]"),
        (
            "{name: blend, params: {members: [ease, {name: tfidf, params: {fields: [plot]}}]}}",
            r"blend member 1 \(tfidf\): item table has no column\(s\) \['plot'\]",
        ),
    ],
)
def test_a_setting_naming_what_the_data_lacks_is_refused_before_any_fit(tmp_path, monkeypatch, bad, message):
    # the models before it trained first (hours, for a torch model) and the run ended with no results
    from clarec.experiment.runner import run_experiment
    from clarec.models.ease import EASE

    fits = []
    monkeypatch.setattr(EASE, "fit", lambda self, *a, **kw: fits.append(1))
    p = random_split_config(tmp_path, f"[{{name: ease, params: {{reg: 10.0}}}}, {bad}]")
    with pytest.raises(ConfigError, match=message):
        run_experiment(load_config(p), tmp_path / "run", seeds=1)
    assert fits == []


def test_a_folder_holding_what_a_run_does_not_write_is_refused(tmp_path):
    """``--out`` naming someone's folder (the repository, a data folder) is refused before anything is
    written there; a folder a run stopped in, before its results, may be run again."""
    from clarec.experiment.runner import run_experiment

    p = random_split_config(tmp_path, "[{name: popularity}]")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"holds what a run does not write \(notes.txt\)"):
        run_experiment(load_config(p), mine)
    assert sorted(x.name for x in mine.iterdir()) == ["notes.txt"]
    with pytest.raises(ConfigError, match="is a file"):
        run_experiment(load_config(p), mine / "notes.txt")
    stopped = tmp_path / "stopped"
    (stopped / "train").mkdir(parents=True)
    (stopped / "log.txt").write_text("a run that stopped\n")
    (stopped / ".stamp.json").write_text("{}")  # hidden: a tool's own (the benchmarks' stamps)
    assert "popularity" in run_experiment(load_config(p), stopped)
    # lists written into a finished run's folder: a resume is told what to move, not to start anew
    (stopped / "lists.tsv.gz").write_bytes(b"")
    with pytest.raises(
        ConfigError, match=r"\(lists.tsv.gz\).*move those out of the run's folder to continue"
    ):
        run_experiment(load_config(p), stopped, resume=True)


def test_a_failed_run_says_so_in_its_log(tmp_path):
    from clarec.experiment.runner import run_experiment

    p = random_split_config(tmp_path, "[{name: tfidf, params: {fields: [nope]}}]")
    with pytest.raises(ConfigError, match="nope"):
        run_experiment(load_config(p), tmp_path / "run")
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "ERROR run failed:" in log and "nope" in log
