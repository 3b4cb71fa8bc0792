"""benchmarks/ablations.py's report, from records written here: the variants and their references,
stale records left out, paired differences and their p-values, segment cells, the HTML forest plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from factories import load_benchmark
from scipy import stats


@pytest.fixture(scope="module")
def ablations():
    return load_benchmark("ablations")


@pytest.fixture
def spec(tmp_path):
    config = {
        "name": "tiny",
        "seed": 1,
        "data": {"name": "ml-100k", "min_rating": 4},
        "split": {"method": "random", "ratios": [0.8, 0.1, 0.1]},
        "models": [{"name": "two-tower", "params": {"lr": 0.003}}],
        "evaluation": {"ks": [20], "main_metric": "ndcg@20"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return {
        "name": "tiny",
        "config": str(path),
        "seeds": [1, 2, 3],
        "segments": ["cold_items"],
        "studies": [
            {
                "model": "two-tower",
                "levers": {
                    "negatives": {"in-batch": {"n_negatives": 0}, "uniform": {"logq": False}},
                    "hard": {"reference": "negatives=uniform", "mined": {"hard_negatives": 8, "logq": False}},
                    "masking": {"off": {"mask_false_negatives": False}},
                },
            }
        ],
    }


def _record(ablations, spec, label, test, cold=None, key=None):
    raw = ablations.variant_config(spec)
    per_seed = []
    for seed, value in zip(spec["seeds"], test, strict=True):
        row = {"seed": seed, "valid": {"ndcg@20": value - 0.01}, "test": {"ndcg@20": value}, "segments": {}}
        if cold is not None:
            row["segments"] = {"cold_items": {"ndcg@20": cold[seed - 1]}}
        per_seed.append(row)
    return {"key": key or ablations.record_key(spec, raw, label), "per_seed": per_seed}


def test_the_report_reads_current_records_and_tests_each_variant_against_its_reference(
    ablations, spec, tmp_path
):
    records = tmp_path / "records"
    labels = [v["label"] for v in ablations.variants(spec)]
    assert labels == [
        "two-tower.default",
        "two-tower.negatives=in-batch",
        "two-tower.negatives=uniform",
        "two-tower.hard=mined",
        "two-tower.masking=off",
    ]
    refs = {v["label"]: v.get("reference") for v in ablations.variants(spec)}
    assert refs["two-tower.hard=mined"] == "two-tower.negatives=uniform"
    assert refs["two-tower.negatives=uniform"] == "two-tower.default"

    default, uniform, mined = [0.20, 0.22, 0.21], [0.15, 0.16, 0.17], [0.18, 0.20, 0.19]
    write = ablations.write_record
    write(
        ablations.record_path(spec, "two-tower.default", records),
        _record(ablations, spec, "two-tower.default", default, [0.01, 0.02, 0.03]),
    )
    write(
        ablations.record_path(spec, "two-tower.negatives=uniform", records),
        _record(ablations, spec, "two-tower.negatives=uniform", uniform, [0.05, 0.07, 0.06]),
    )
    write(
        ablations.record_path(spec, "two-tower.hard=mined", records),
        _record(ablations, spec, "two-tower.hard=mined", mined),
    )
    # a record made under other settings (another learning rate in the config) is stale: not reported
    stale_key = ablations.record_key(spec, ablations.variant_config(spec), "two-tower.masking=off")
    stale_key["model"] = stale_key["model"] | {"params": {"lr": 0.1, "mask_false_negatives": False}}
    write(
        ablations.record_path(spec, "two-tower.masking=off", records),
        _record(ablations, spec, "two-tower.masking=off", default, key=stale_key),
    )

    found = ablations.current(spec, records)
    assert set(found) == {"two-tower.default", "two-tower.negatives=uniform", "two-tower.hard=mined"}
    lines = ablations.report_spec(spec, records, "ndcg@20", spec["segments"])
    rows = {line.split(" | ")[2]: line for line in lines if line.startswith("| two-tower")}
    assert set(rows) == {"default", "uniform", "mined"}
    assert lines[-1] == "Not run yet: two-tower.negatives=in-batch, two-tower.masking=off."

    p_uniform = stats.ttest_rel(uniform, default).pvalue
    assert f"| {np.mean(uniform) - np.mean(default):+.4f} (default) | {p_uniform:.2g} |" in rows["uniform"]
    p_mined = stats.ttest_rel(mined, uniform).pvalue
    assert (
        f"| {np.mean(mined) - np.mean(uniform):+.4f} (negatives=uniform) | {p_mined:.2g} |" in rows["mined"]
    )
    assert "0.2100 ± 0.0100" in rows["default"] and "0.2000 ± 0.0100" in rows["default"]  # test, valid
    # the segment column: mean ± std, and its paired difference where both sides have the segment
    assert rows["uniform"].endswith(
        f"0.0600 ± 0.0100 (Δ +0.0400, p = {stats.ttest_rel([0.05, 0.07, 0.06], [0.01, 0.02, 0.03]).pvalue:.2g}) |"
    )
    assert rows["mined"].endswith("|  |")  # no segment figures in its record

    page = tmp_path / "ablations.html"
    ablations.write_html([spec], records, page, "Tiny ablations")
    text = page.read_text()
    assert text.count("<svg") == 1 and "two-tower.hard=mined" in text and "Tiny ablations" in text


def test_a_spec_on_the_configs_own_split_must_start_at_the_configs_seed(ablations, spec):
    # the run's first seed draws the split: another first seed would be another draw than the one
    # the report names (and than the one inputs such as written profiles were made for)
    ablations.variant_config(spec | {"split_seeds": False})  # seeds 1, 2, 3; the config's seed is 1
    with pytest.raises(SystemExit, match="start the seeds at 1"):
        ablations.variant_config(spec | {"split_seeds": False, "seeds": [2, 3, 4]})
    ablations.variant_config(spec | {"seeds": [2, 3, 4]})  # each seed draws its own split: any seeds


def test_a_run_of_one_seed_is_recorded(ablations, spec, tmp_path):
    import argparse

    import _records

    spec = spec | {"seeds": [1]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    raw = ablations.variant_config(spec)
    label = "two-tower.default"
    out = tmp_path / "runs" / label
    _records.start_folder(out, ablations.record_key(spec, raw, label))
    # what clarec run writes for one seed: that seed's result, with no per_seed list
    result = {"seed": 1, "valid": {"ndcg@20": 0.2}, "test": {"ndcg@20": 0.25}, "segments": {}}
    (out / "results.json").write_text(json.dumps({label: result}))
    records = tmp_path / "records"
    ablations.run(argparse.Namespace(spec=path, runs=tmp_path / "runs", only=[label], records=records))
    record = json.loads((records / "tiny" / f"{label}.json").read_text())
    assert record["per_seed"] == [result]
