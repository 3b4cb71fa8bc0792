"""benchmarks/validation_sweep.py: a sweep's records are keyed by the parameters each run trains with,
so writing the chosen setting into the config keeps them valid, while any other change to what a run
depends on (a base parameter the point does not set, the data, the seed) makes them stale."""

from __future__ import annotations

import copy

from factories import load_benchmark

RAW = {
    "data": {"name": "ml-100k"},
    "split": {"method": "leave_one_out"},
    "evaluation": {"main_metric": "ndcg@20"},
}
ENTRY = {"name": "sasrec", "label": "sasrec-a", "params": {"lr": 0.001, "patience": 5}}


def test_writing_the_chosen_setting_into_the_config_keeps_the_records():
    sweep = load_benchmark("validation_sweep")
    key = sweep.record_key(RAW, ENTRY, {"patience": 10}, 2024)
    edited = copy.deepcopy(ENTRY)
    edited["params"]["patience"] = 10
    assert sweep.record_key(RAW, edited, {"patience": 10}, 2024) == key
    assert sweep.record_key(RAW, edited, {}, 2024) == key  # the config's own is now the same run
    assert key["model"] == {"name": "sasrec", "label": "sasrec-a", "params": {"lr": 0.001, "patience": 10}}
    assert ENTRY["params"]["patience"] == 5  # the config entry is not modified


def test_anything_else_a_run_depends_on_changes_the_key():
    sweep = load_benchmark("validation_sweep")
    key = sweep.record_key(RAW, ENTRY, {"patience": 10}, 2024)
    assert sweep.record_key(RAW, ENTRY, {"patience": 5}, 2024) != key
    assert sweep.record_key(RAW, ENTRY, {"patience": 10}, 2025) != key
    other_base = copy.deepcopy(ENTRY)
    other_base["params"]["lr"] = 0.002
    assert sweep.record_key(RAW, other_base, {"patience": 10}, 2024) != key
    assert sweep.record_key(RAW | {"data": {"name": "ml-1m"}}, ENTRY, {"patience": 10}, 2024) != key


def test_a_grid_reads_numbers_with_an_exponent_as_numbers():
    sweep = load_benchmark("validation_sweep")
    # YAML 1.1 leaves 2e-05 (no dot) a string; the model would coerce it, but the record and the result
    # file would name a string, and a point in the config written 2.0e-05 would not match its record
    grid = sweep.parse_grid(["lr=2e-05,0.001,1e3", "similarity=cos,dot", "center=true"])
    assert grid == {"lr": [2e-05, 0.001, 1000.0], "similarity": ["cos", "dot"], "center": [True]}
    assert all(isinstance(v, float) for v in grid["lr"])
