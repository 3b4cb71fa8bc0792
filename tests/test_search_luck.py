"""benchmarks/search_luck.py: a cell's search again with another sampler seed — only the search path
moves, only validation figures are kept, and a finished seed is read back, not searched again."""

from __future__ import annotations

import json
import subprocess

import pytest
from factories import load_benchmark, make_random_dataset, write_events

pytest.importorskip("optuna")


@pytest.fixture(scope="module")
def luck():
    return load_benchmark("search_luck")


def _suite(events) -> dict:
    return {
        "trials": 2,
        "seeds": 1,
        "evaluation": {"ks": [20], "main_metric": "ndcg@20"},
        "baselines": ["ease"],
        "models": [{"name": "ease", "search": {"reg": [1.0, 30.0, 900.0]}}, {"name": "popularity"}],
        "datasets": {
            "tiny": {
                "data": {"source": "tabular", "path": str(events)},
                "split": {"method": "random", "ratios": [0.6, 0.2, 0.2]},
            }
        },
    }


def test_a_search_seed_moves_only_the_sampler_and_keeps_validation_only(luck, tmp_path, monkeypatch):
    events = write_events(make_random_dataset(n_users=30, n_items=25, per_user=8, seed=1), tmp_path / "e.csv")
    suite = _suite(events)
    config = luck.search_config(suite, "tiny", "ease", 7)
    assert [m["name"] for m in config["models"]] == ["ease"]
    assert config["tuning"]["search_seed"] == 7
    assert "search_seed" not in luck.search_config(suite, "tiny", "ease", None)["tuning"]
    cell = luck.dataset_config(suite, "tiny")
    assert {k: v for k, v in config.items() if k not in ("models", "tuning")} == {
        k: v for k, v in cell.items() if k not in ("models", "tuning")
    }

    runs, records = tmp_path / "runs", tmp_path / "records"
    record = luck.search(suite, "tiny", "ease", 7, runs, records)
    assert record["best_params"]["reg"] in (1.0, 30.0, 900.0)
    assert len(record["per_seed"]) == 1 and record["valid"] == pytest.approx(record["per_seed"][0])
    assert 0.0 < record["valid"] < 1.0
    kept = json.loads((records / "tiny" / "ease-7.json").read_text())
    assert "test" not in json.dumps({k: v for k, v in kept.items() if k != "config"})

    # kept: read back without searching; another suite (here: the budget) searches again
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("searched again"))
    assert luck.search(suite, "tiny", "ease", 7, runs, records) == kept
    with pytest.raises(pytest.fail.Exception):
        luck.search(suite | {"trials": 3}, "tiny", "ease", 7, runs, records)


def test_a_blend_or_a_model_not_in_the_suite_is_refused(luck, tmp_path):
    suite = _suite(tmp_path / "e.csv")
    suite["models"].append({"name": "blend", "label": "mix", "blend_of": ["ease", "popularity"]})
    for model in ("mix", "bpr"):
        with pytest.raises(SystemExit, match="not a searched model"):
            luck.search_config(suite, "tiny", model, 7)
