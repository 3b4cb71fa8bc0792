"""clarec report: one self-contained HTML page of a run, checked as text and drawn in Chromium."""

from __future__ import annotations

import pytest
from test_tune import write_data

from clarec.cli import main
from clarec.config import load_config
from clarec.errors import ClarecError
from clarec.experiment.html_report import write_report
from clarec.experiment.runner import run_experiment


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    p = tmp / "c.yaml"
    p.write_text(
        f"name: tiny\ndata: {{source: tabular, path: {write_data(tmp / 'data')}}}\n"
        "split: {method: random, ratios: [0.6, 0.2, 0.2]}\n"
        "models:\n  - name: popularity\n  - name: ease\n    params: {reg: 5.0}\n"
        "  - name: bpr\n    params: {epochs: 4, embedding_dim: 8, progress: false, num_threads: 1}\n"
        "evaluation: {ks: [10, 20], history_items: [masked, kept]}\n"
    )
    run_experiment(load_config(p), tmp / "run", seeds=2, save_models=False, split_seeds=True)
    return tmp / "run"


def test_the_page_states_protocol_metrics_and_figures(run):
    page = write_report(run).read_text()
    assert "<h2>Protocol</h2>" in page and "full ranking, no sampled negatives" in page
    assert "the user's training items (and validation items when testing)" in page
    assert "Seeds: [2024, 2025] (each drew the split too)" in page
    assert "Test metrics, history items kept" in page and "activity_q1" in page
    assert page.count("<svg") == 3  # accuracy vs coverage, vs novelty; bpr's training curve
    assert "bpr (seed-2024): best epoch" in page
    for external in ('src="http', 'href="http', "<script", "<link", "url(http"):  # offline, self-contained
        assert external not in page
    for name in ("popularity", "ease", "bpr"):
        assert f'<td class="best">{name}' in page or f'<td class="">{name}' in page


def test_the_page_draws_in_chromium(run, browser_page):
    path = write_report(run)
    requests = []
    browser_page.on("request", lambda r: requests.append(r.url))
    browser_page.goto(path.as_uri())
    sizes = browser_page.eval_on_selector_all("svg", "els => els.map(e => e.getBoundingClientRect().width)")
    assert len(sizes) == 3 and all(w > 100 for w in sizes)
    drawn = browser_page.eval_on_selector_all("svg path", "els => els.length")
    assert drawn > 20  # axes, points and lines were rendered
    assert all(url.startswith("file://") for url in requests)


def test_cli_and_bad_folder(run, tmp_path, capsys):
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(ClarecError, match="not a run folder"):
        write_report(tmp_path)


def test_temperature_and_loss_weight_curves_are_drawn(run, tmp_path):
    import json
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    path = copy / "train" / "bpr" / "seed-2024" / "history.json"
    h = json.loads(path.read_text())
    h["traces"] = {
        "temperature": [0.2, 0.15, 0.1, 0.05][: len(h["epochs"])],
        "weight aux": [0.5] * len(h["epochs"]),
    }
    path.write_text(json.dumps(h))
    page = write_report(copy).read_text()
    assert page.count("<svg") == 4 and "bpr: temperature and loss weights" in page
    assert write_report(run).read_text().count("<svg") == 3  # bpr has none of its own


def test_a_damaged_run_folder_gets_one_clear_answer(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    history = copy / "train" / "bpr" / "seed-2024" / "history.json"
    history.write_text(history.read_text()[:40])  # a run stopped while writing it
    page = write_report(copy).read_text()
    assert "bpr: no training curve" in page and page.count("<svg") == 2
    with pytest.raises(ClarecError, match="is a folder"):
        write_report(copy, out=tmp_path)
    for broken in ("{not json", "[1]", "{}", '{"ease": {"valid": null}}'):
        (copy / "results.json").write_text(broken)
        with pytest.raises(ClarecError, match="results.json"):
            write_report(copy)


def test_the_curve_drawn_is_the_runs_own_first_seed(run, tmp_path):
    # the first seed-* folder in sorted order was drawn, whatever run left it there
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    stray = copy / "train" / "bpr" / "seed-1999"
    shutil.copytree(copy / "train" / "bpr" / "seed-2024", stray)
    (stray / "history.json").write_text("{}")  # unreadable, were it drawn
    page = write_report(copy).read_text()
    assert "no training curve" not in page and page.count("<svg") == 3


def test_dollar_labels_constant_differences_and_user_samples_are_written_as_they_are(run, tmp_path):
    """A "$" in a model's name is drawn as text (a lone one crashed matplotlib's mathtext); a model
    whose difference from the reference is the same on every seed is marked (†), not left unmarked
    as if tested and found level; a run scored on a sample of users says so in its protocol."""
    import json
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    results = json.loads((copy / "results.json").read_text())
    main_metric = "ndcg@20"
    best = max(results, key=lambda k: results[k]["valid"][main_metric])
    other = next(k for k in results if k != best)
    for mine, ref in zip(results[other]["per_seed"], results[best]["per_seed"], strict=True):
        mine["test"][main_metric] = ref["test"][main_metric] - 0.05
    results = {(f"{k} $x^$" if k == other else k): v for k, v in results.items()}
    for r in results.values():  # as a run scored on a sample of 7 users records it
        r["test_sample"] = {"users": 7, "population": 30, "seed": 0}
    (copy / "results.json").write_text(json.dumps(results))
    cfg = (copy / "config.yaml").read_text()
    (copy / "config.yaml").write_text(cfg.replace("evaluation:\n", "evaluation:\n  user_sample: 7\n", 1))
    page = write_report(copy).read_text()
    assert f"{other} $x^$ †" in page and "†: differs from it by the same amount" in page
    assert "Scored on a random sample of 7 users" in page
    # a sample at least as large as the users with test items draws nothing: said so, no intervals
    for r in results.values():
        r.pop("test_sample")
    (copy / "results.json").write_text(json.dumps(results))
    page = write_report(copy).read_text()
    assert "Every user scored: no more than the sample&#x27;s 7" in page and "random sample" not in page
