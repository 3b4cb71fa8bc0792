"""benchmarks/recipe_stability.py: on a split without randomness a (model, seed) already run by
benchmarks/sequential.py under the same config is read from its record, not fitted again; a record
made under another config is not; search configs are skipped with their reason."""

from __future__ import annotations

import sys

import yaml
from factories import load_benchmark

CONFIG = {
    "name": "tiny-seq",
    "seed": 2024,
    "data": {"name": "ml-100k"},
    "split": {"method": "leave_one_out"},
    "models": [
        {"name": "popularity"},
        {"name": "sasrec", "params": {"epochs": 3}},
        {"name": "sasrec", "label": "sasrec-wide", "params": {"epochs": 3, "embedding_dim": 128}},
    ],
    "evaluation": {"ks": [20], "main_metric": "ndcg@20"},
}


def test_sequential_records_are_read_and_search_configs_skipped(tmp_path, monkeypatch):
    stability = load_benchmark("recipe_stability")
    sequential = load_benchmark("sequential")
    records = tmp_path / "records"

    def record(raw, model, seed, value):
        result = {"test": {"ndcg@20": value}, "fit_seconds": 10.0}
        sequential.write_record(
            records / raw["name"] / f"{model}-{seed}.json",
            {"config": sequential.model_config(raw, model, seed), "epochs": [3, 2], "result": result},
        )

    record(CONFIG, "popularity", 2024, 0.01)
    record(CONFIG, "sasrec", 2024, 0.050)
    record(CONFIG, "sasrec", 2025, 0.048)
    stale = yaml.safe_load(yaml.safe_dump(CONFIG))
    stale["models"][2]["params"]["embedding_dim"] = 64  # made under other settings: not this recipe's
    record(stale, "sasrec-wide", 2024, 0.9)
    seq, tune = tmp_path / "tiny-seq.yaml", tmp_path / "tune.yaml"
    seq.write_text(yaml.safe_dump(CONFIG))
    tune.write_text(yaml.safe_dump(CONFIG | {"name": "tiny-tune", "tuning": {"trials": 2}}))
    out_md = tmp_path / "stability.md"
    argv = ["recipe_stability.py", str(out_md), "--configs", str(seq), str(tune), "--no-fit"]
    argv += ["--records", str(records), "--out", str(tmp_path / "runs"), "--seeds", "2024", "2025"]
    monkeypatch.setattr(sys, "argv", argv)
    stability.main()
    text = out_md.read_text()
    assert (
        "| popularity † | 0.0100 / 0.0100 (fitted once: deterministic) | 0.0100 ± 0.0000 | 1.000 | yes |"
        in text
    )
    assert "| sasrec † | 0.0500 / 0.0480 | 0.0490 ± 0.0014 | 0.980 | yes | 10.0 |" in text
    assert "| sasrec-wide | not finished |" in text  # its only record is stale
    assert "Skipped: search config (`tuning`)" in text
    assert "Status: partial" in text and "Not finished: tiny-seq: sasrec-wide." in text
    assert not (tmp_path / "runs").exists()  # --no-fit fitted nothing


def test_a_leave_one_out_split_that_draws_new_items_is_not_fitted_once(tmp_path, monkeypatch):
    stability = load_benchmark("recipe_stability")
    sequential = load_benchmark("sequential")
    assert stability.split_is_fixed({"method": "leave_one_out"})
    assert not stability.split_is_fixed({"method": "leave_one_out", "cold_share": 0.1})
    assert not stability.split_is_fixed({"method": "leave_one_out", "noise": 0.1})
    assert not stability.split_is_fixed({"method": "random"})
    raw = CONFIG | {"name": "tiny-new", "split": {"method": "leave_one_out", "cold_share": 0.1}}
    records = tmp_path / "records"
    for seed, value in ((2024, 0.010), (2025, 0.012)):  # each seed draws other new items
        sequential.write_record(
            records / raw["name"] / f"popularity-{seed}.json",
            {
                "config": sequential.model_config(raw, "popularity", seed),
                "epochs": None,
                "result": {"test": {"ndcg@20": value}, "fit_seconds": 0.0},
            },
        )
    path, out_md = tmp_path / "tiny-new.yaml", tmp_path / "stability.md"
    path.write_text(yaml.safe_dump(raw))
    argv = ["recipe_stability.py", str(out_md), "--configs", str(path), "--no-fit", "--records", str(records)]
    argv += ["--out", str(tmp_path / "runs"), "--seeds", "2024", "2025"]
    monkeypatch.setattr(sys, "argv", argv)
    stability.main()
    text = out_md.read_text()
    assert "| popularity † | 0.0100 / 0.0120 | 0.0110 ± 0.0014 | 0.909 | **no** |" in text
    assert "draws its new items" in text and "fitted once" not in text
