"""End-to-end: the `clarec` command on a small predefined split (no real data needed)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from factories import make_random_dataset

from clarec.cli import main
from clarec.data.split import load_predefined_split, random_split
from clarec.evaluate import Evaluator
from clarec.models import create


@pytest.fixture
def split_dir(tmp_path) -> Path:
    ds = make_random_dataset(n_users=60, n_items=40, per_user=10, seed=3)
    return random_split(ds, seed=1).save(tmp_path / "split")


def write_config(
    tmp_path, split_dir, models="[{name: popularity}, {name: ease, params: {reg: 10.0}}]"
) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(
        f"name: tiny\nsplit: {{method: predefined, path: {split_dir}}}\nmodels: {models}\n"
        "evaluation: {ks: [5, 10]}\n"
    )
    return p


def test_run_writes_results(tmp_path, split_dir, capsys):
    cfg = write_config(tmp_path, split_dir)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "| popularity |" in printed and "ndcg@10" in printed
    # one progress line as each model starts and ends, with the validation figure (never test)
    progress = captured.err.splitlines()
    assert any("data ready" in line for line in progress)
    for name in ("popularity", "ease"):
        assert any(f"{name} (seed 2024): fitting" in line for line in progress)
        assert any(f"{name} (seed 2024): fit " in line and "valid ndcg@" in line for line in progress)
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"popularity", "ease"}
    assert all(r["history_items"] == "masked" and r["test_input"] == "train" for r in results.values())
    assert "History items masked (main table)." in (out / "results.md").read_text()
    # the figures are those of the same models fitted and evaluated by hand on the split
    split = load_predefined_split(split_dir)
    for name, params in (("popularity", {}), ("ease", {"reg": 10.0})):
        model = create(name, params).fit(split.train, split.valid)
        by_hand = Evaluator(split, ks=(5, 10)).evaluate(model, part="test").metrics
        assert set(results[name]) >= {"valid", "test", "fit_seconds"}
        for metric in ("ndcg@10", "recall@5", "coverage@10"):
            assert results[name]["test"][metric] == pytest.approx(by_hand[metric], abs=1e-9), (name, metric)
    assert results["ease"]["test"]["ndcg@10"] > results["popularity"]["test"]["ndcg@10"]
    for name in (
        "config.yaml",
        "results.md",
        "log.txt",
        "data.json",
        "split/train.tsv",
        "models/ease/model.json",
    ):
        assert (out / name).is_file(), name


def test_run_with_seeds_reports_mean_and_std(tmp_path, split_dir):
    cfg = write_config(tmp_path, split_dir, models="[{name: bpr, params: {epochs: 2, embedding_dim: 8}}]")
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--seeds", "2", "--set", "seed=11"]) == 0
    r = json.loads((out / "results.json").read_text())["bpr"]
    assert r["seeds"] == [11, 12]
    per = [s["test"]["ndcg@10"] for s in r["per_seed"]]
    assert r["test"]["ndcg@10"] == pytest.approx(sum(per) / 2)
    assert r["std"]["test"]["ndcg@10"] == pytest.approx(np.std(per, ddof=1))
    assert per[0] != per[1]  # two model seeds, two models


def test_run_resume_continues_a_stopped_fit(tmp_path, split_dir, capsys):
    cfg = write_config(tmp_path, split_dir, models="[{name: bpr, params: {epochs: 4, embedding_dim: 8}}]")
    whole = tmp_path / "whole"
    assert main(["run", str(cfg), "--out", str(whole)]) == 0
    # a stopped run: the state after its second epoch is all that is left of it
    cut = tmp_path / "cut"
    assert main(["run", str(cfg), "--out", str(cut), "--set", "models.0.params.epochs=2"]) == 0
    path = cut / "train" / "bpr" / "seed-2024" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["finished"] = False
    state["signature"] = state["signature"].replace("'epochs': 2", "'epochs': 4")
    torch.save(state, path)
    (cut / "config.yaml").write_text((whole / "config.yaml").read_text())  # the stopped run's own
    capsys.readouterr()
    assert main(["run", str(cfg), "--out", str(cut), "--resume"]) == 0
    assert "bpr (seed 2024): resumed after epoch 2, 4 in all" in capsys.readouterr().err  # on screen
    log = (cut / "train" / "bpr" / "seed-2024" / "log.txt").read_text()
    after = log.split("resumed after epoch 2\n")[1]  # the log goes on where the stopped fit's ended
    assert [line.split()[1] for line in after.splitlines() if line.startswith("epoch")] == ["3", "4"]
    a, b = (json.loads((d / "results.json").read_text())["bpr"] for d in (whole, cut))
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    assert b["resumed_after"] == [2] and "resumed_after" not in a
    assert main(["run", str(cfg), "--resume"]) == 2
    assert "--resume continues a run folder" in capsys.readouterr().err


def test_run_only_some_models(tmp_path, split_dir, capsys):
    cfg = write_config(
        tmp_path, split_dir, models="[{name: popularity}, {name: ease, label: e}, {name: itemknn}]"
    )
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--models", "itemknn, e"]) == 0
    assert list(json.loads((tmp_path / "run" / "results.json").read_text())) == ["e", "itemknn"]
    assert main(["run", str(cfg), "--out", str(tmp_path / "r2"), "--models", "ease"]) == 2
    assert "--models: ['ease'] not in the config" in capsys.readouterr().err
    # the names may also follow --models one by one, as the benchmark scripts take them
    assert main(["run", str(cfg), "--out", str(tmp_path / "r3"), "--models", "popularity", "e"]) == 0
    assert list(json.loads((tmp_path / "r3" / "results.json").read_text())) == ["popularity", "e"]
    assert main(["run", str(cfg), "--out", str(tmp_path / "r4"), "e"]) == 2  # no --models
    assert "unexpected argument(s): e" in capsys.readouterr().err


def test_bad_config_is_one_line(tmp_path, split_dir, capsys):
    cfg = write_config(tmp_path, split_dir, models="[{name: nosuchmodel}]")
    assert main(["run", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "unknown model 'nosuchmodel'" in err and "\n" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"models: [{{name: ease, params: {{regg: 1}}}}]\nsplit: {{method: predefined, path: {split_dir}}}\n"
    )
    assert main(["run", str(bad), "--out", str(tmp_path / "r2")]) == 2
    assert "unknown parameter" in capsys.readouterr().err


def test_evaluate_external_file(tmp_path, split_dir, capsys):
    test = (split_dir / "test.tsv").read_text().splitlines()[1:]
    # A perfect recommender: each user's test items at the top.
    rows, rank = [], {}
    for line in test:
        u, i = line.split("\t")[:2]
        rank[u] = rank.get(u, 0) + 1
        rows.append(f"{u}\t{i}\t{rank[u]}")
    recs = tmp_path / "recs.tsv"
    recs.write_text("user_id\titem_id\trank\n" + "\n".join(rows) + "\n")
    out = tmp_path / "m.json"
    assert (
        main(
            ["evaluate", "--split", str(split_dir), "--recs", str(recs), "--k", "5", "10", "--json", str(out)]
        )
        == 0
    )
    metrics = json.loads(out.read_text())
    assert metrics["recall@10"] == pytest.approx(1.0) and metrics["ndcg@5"] == pytest.approx(1.0)
    assert metrics["history_items"] == "kept"  # the convention is named with the figures
    assert "recall@5" in json.loads(capsys.readouterr().out)


def test_models_and_split_commands(tmp_path, split_dir, capsys):
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    for name in ("popularity", "itemknn", "ease", "bpr", "tfidf"):
        assert name in listed
    assert main(["models", "ease"]) == 0  # one model: each parameter's default and range
    detail = capsys.readouterr().out.splitlines()
    assert detail[0].startswith("ease: Linear item-item autoencoder")
    assert [line.split()[0] for line in detail[1:]] == ["reg", "max_items", "weighted"]
    assert "default 250.0, > 0" in detail[1]
    assert main(["models", "eas"]) == 2 and "did you mean 'ease'" in capsys.readouterr().err
    cfg = write_config(tmp_path, split_dir)
    assert main(["split", str(cfg), str(tmp_path / "copy")]) == 0
    assert (tmp_path / "copy" / "test.tsv").read_text() == (split_dir / "test.tsv").read_text()
    # a folder holding files, the split's own source among them, is never written over
    before = (split_dir / "train.tsv").read_text()
    assert main(["split", str(cfg), str(split_dir)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert (split_dir / "train.tsv").read_text() == before


def test_a_folder_holding_a_run_is_refused_without_resume(tmp_path, split_dir, capsys):
    cfg = write_config(tmp_path, split_dir)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--models", "popularity"]) == 0
    before = (out / "results.json").read_text()
    assert main(["run", str(cfg), "--out", str(out), "--models", "ease"]) == 2
    assert "holds an earlier run" in capsys.readouterr().err
    assert (out / "results.json").read_text() == before and not (out / "models" / "ease").exists()
    assert main(["run", str(cfg), "--out", str(out), "--models", "popularity", "--resume"]) == 0
    # resumed with other models: refused (it replaced results.json with the new models' rows)
    assert main(["run", str(cfg), "--out", str(out), "--models", "ease", "--resume"]) == 2
    assert "holds a run of another config (it differs in: models)" in capsys.readouterr().err
    assert (out / "results.json").read_text() == before and not (out / "models" / "ease").exists()


def test_usage_error_exit_code(capsys):
    assert main(["run"]) == 2  # missing CONFIG argument
    assert "Missing argument" in capsys.readouterr().err


def test_data_commands_fail_with_a_status(tmp_path, capsys):
    assert main(["data", "info", "no-such-set", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-such-set" in err
    assert main(["data", "import", "ml-100k", str(tmp_path / "missing"), "--root", str(tmp_path)]) == 2


def test_a_launched_commands_status_is_returned(tmp_path, split_dir, monkeypatch):
    import subprocess

    monkeypatch.setattr(subprocess, "call", lambda *a, **k: 3)  # torchrun's status
    cfg = write_config(tmp_path, split_dir)
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--nproc", "2"]) == 3


def test_recommend_writes_the_lists_the_run_was_scored_on(tmp_path, split_dir, capsys):
    cfg = write_config(tmp_path, split_dir)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    recs = tmp_path / "lists" / "ease.tsv.gz"
    assert main(["recommend", str(out), "--model", "ease", "--k", "10", "--out", str(recs)]) == 0
    assert "model 'ease', the test lists (history items masked" in capsys.readouterr().err
    lines = gzip.decompress(recs.read_bytes()).decode().splitlines()
    assert lines[0] == "user_id\titem_id\trank\tscore" and len(lines) == 1 + 60 * 10
    # scored as given, the file gives the run's test figures back
    assert main(["evaluate", "--split", str(out / "split"), "--recs", str(recs), "--k", "5", "10"]) == 0
    again = json.loads(capsys.readouterr().out)
    for metric in ("ndcg@5", "ndcg@10", "recall@10", "coverage@10"):
        assert again[metric] == pytest.approx(results["ease"]["test"][metric], abs=1e-9), metric
    # the best on validation by default; chosen users; an existing file is kept unless --force
    users = tmp_path / "users.txt"
    users.write_text("u3\nu1\nu3\n")  # a repeated id gets one list (two made a file evaluate refuses)
    assert main(["recommend", str(out), "--k", "3", "--users", str(users), "--out", str(recs)]) == 2
    assert "exists" in capsys.readouterr().err
    assert (
        main(["recommend", str(out), "--k", "3", "--users", str(users), "--out", str(recs), "--force"]) == 0
    )
    best = max(results, key=lambda m: results[m]["valid"]["ndcg@10"])
    assert f"model {best!r}" in capsys.readouterr().err
    rows = [ln.split("\t") for ln in gzip.decompress(recs.read_bytes()).decode().splitlines()[1:]]
    assert [r[0] for r in rows] == ["u3"] * 3 + ["u1"] * 3 and [r[2] for r in rows[:3]] == ["1", "2", "3"]
    assert float(rows[0][3]) >= float(rows[1][3]) >= float(rows[2][3])
    users.write_text("u3\nnobody\n")
    assert main(["recommend", str(out), "--users", str(users), "--out", str(tmp_path / "x.tsv")]) == 2
    assert "not in the run's split, e.g. 'nobody'" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()


def test_a_bad_config_resumed_into_a_run_leaves_its_files_as_they_were(tmp_path, split_dir, capsys):
    cfg = write_config(tmp_path, split_dir)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    kept = {name: (out / name).read_text() for name in ("config.yaml", "log.txt", "results.json")}
    bad = write_config(tmp_path, split_dir, models="[{name: ease, params: {regg: 3}}]")
    assert main(["run", str(bad), "--out", str(out), "--resume"]) == 2
    assert "unknown parameter(s) ['regg']" in capsys.readouterr().err
    missing = write_config(tmp_path, tmp_path / "no-split")
    assert main(["run", str(missing), "--out", str(out), "--resume"]) == 2
    assert "holds a run of another config (it differs in: split)" in capsys.readouterr().err
    assert {name: (out / name).read_text() for name in kept} == kept


def test_a_run_does_not_write_over_its_own_config_file_and_resume_needs_one_process(
    tmp_path, split_dir, capsys
):
    # `cd project && clarec run config.yaml --out .` replaced the user's commented config.yaml
    text = "# my notes\n" + write_config(tmp_path, split_dir).read_text()
    own = tmp_path / "proj" / "config.yaml"
    own.parent.mkdir()
    own.write_text(text)
    assert main(["run", str(own), "--out", str(own.parent)]) == 2
    assert "holds the config file itself" in capsys.readouterr().err and own.read_text() == text
    # --nproc with --resume: refused at once (it ran the non-torch models first, then a traceback)
    assert main(["run", str(own), "--out", str(tmp_path / "r"), "--nproc", "2", "--resume"]) == 2
    assert "--resume runs in one process" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_evaluate_writes_null_for_a_metric_with_nothing_to_average(tmp_path, split_dir):
    # every listed item is a training item, so under masked no user keeps a recommendation: novelty
    # and the like have no list to average (NaN), which JSON writes as null, not as NaN
    train = [line.split("\t")[:2] for line in (split_dir / "train.tsv").read_text().splitlines()[1:]]
    recs = tmp_path / "recs.tsv"
    recs.write_text("user_id\titem_id\trank\n" + "".join(f"{u}\t{i}\t1\n" for u, i in dict(train).items()))
    out = tmp_path / "m.json"
    args = ["evaluate", "--split", str(split_dir), "--recs", str(recs), "--k", "5", "--json", str(out)]
    assert main([*args, "--history-items", "masked"]) == 0
    text = out.read_text()
    assert "NaN" not in text and json.loads(text)["novelty@5"] is None
    assert json.loads(text)["recall@5"] == 0.0


def test_cut_offs_are_integers():
    from clarec.evaluate.metrics import check_ks

    assert check_ks([20, 10, 10.0]) == (10, 20)
    for bad in ([10.7], [True], ["10"], [0]):
        with pytest.raises(ValueError, match="cut-offs must be"):
            check_ks(bad)
