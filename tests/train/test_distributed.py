"""Training on several processes: batch slicing, a graph model and the two-tower on 2 gloo processes
giving what one process gives with the same global batch, `clarec tune` on 2 processes making the
choices of one, and a killed rank ending the run with an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from clarec.data.synth import synthesize
from clarec.train.distributed import (
    batch_length,
    broadcast_float,
    is_main,
    mean_over_ranks,
    shard,
    world_size,
)


def test_shard_slices_every_batch_array_and_nothing_else():
    users, items = torch.arange(10), np.arange(10) * 2
    table = torch.zeros(3, 4)  # shared, another length: passed whole
    batch = (users, {"items": items, "table": table, "k": 5})
    parts = [shard(batch, i, 3) for i in range(3)]
    assert [len(p[0]) for p in parts] == [3, 4, 3]
    assert torch.cat([p[0] for p in parts]).tolist() == users.tolist()
    assert np.concatenate([p[1]["items"] for p in parts]).tolist() == items.tolist()
    assert all(p[1]["table"] is table and p[1]["k"] == 5 for p in parts)
    assert batch_length([5, (np.zeros((7, 2)),)]) == 7 and batch_length({"a": 1}) is None


def test_single_process_helpers_are_identities():
    assert world_size() == 1 and is_main()
    assert broadcast_float(0.25) == 0.25 and broadcast_float(None) is None and mean_over_ranks(3.0) == 3.0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    synthesize("ml-20m", folder / "data" / "ml-20m", scale=0.003, seed=0)
    config = {
        "name": "ddp",
        "seed": 7,
        "data": {"name": "ml-20m", "min_rating": 4},
        "split": {"method": "random", "ratios": [0.8, 0.1, 0.1]},
        "evaluation": {"ks": [20], "main_metric": "ndcg@20"},
        "models": [
            {
                "name": "lightgcn",
                "params": {"embedding_dim": 16, "n_layers": 2, "epochs": 3, "batch_size": 512, "lr": 0.01},
            },
            # SGL's views are drawn alike on every rank; its InfoNCE takes the whole batch's nodes
            {
                "name": "sgl",
                "params": {"embedding_dim": 16, "n_layers": 2, "epochs": 2, "batch_size": 512, "lr": 0.01},
            },
            # SimGCL's noise comes from the global generator, seeded alike on every rank: every rank
            # draws what one process draws (XSimGCL draws it the same way)
            {
                "name": "simgcl",
                "params": {"embedding_dim": 16, "n_layers": 2, "epochs": 2, "batch_size": 512, "lr": 0.01},
            },
            # dropout off: the towers' dropout masks are drawn per rank, everything else alike
            {
                "name": "two-tower",
                "params": {
                    "epochs": 2,
                    "batch_size": 255,
                    "dropout": 0.0,
                    "cache_dir": str(folder / "cache"),
                },
            },
            {"name": "popularity"},
        ],
    }
    (folder / "cfg.yaml").write_text(yaml.safe_dump(config))
    return folder


def _clarec(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"CLAREC_DATA": str(folder / "data"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "clarec", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_two_gloo_processes_train_as_one_with_the_same_global_batch(tiny_run):
    one = _clarec(tiny_run, "run", "cfg.yaml", "--out", "one")
    assert one.returncode == 0, one.stderr[-2000:]
    two = _clarec(tiny_run, "run", "cfg.yaml", "--out", "two", "--nproc", "2")
    assert two.returncode == 0, two.stderr[-2000:]
    results = [json.loads((tiny_run / r / "results.json").read_text()) for r in ("one", "two")]
    for model, epochs in (("lightgcn", 3), ("sgl", 2), ("simgcl", 2), ("two-tower", 2)):
        logs = [
            (tiny_run / r / "train" / model / "seed-7" / "log.txt").read_text().splitlines()
            for r in ("one", "two")
        ]
        curves = [
            np.array([[float(w) for w in line.split()[3:6:2]] for line in log if line.startswith("epoch")])
            for log in logs
        ]
        assert len(curves[0]) == len(curves[1]) == epochs, model
        # training loss per epoch: the same up to float summation order (stated tolerance: relative
        # 1e-4, which InfoNCE's low temperatures need); validation and test NDCG@20 within 1e-3 (a
        # near-tie in a ranking may flip)
        np.testing.assert_allclose(curves[1][:, 0], curves[0][:, 0], rtol=1e-4, err_msg=model)
        np.testing.assert_allclose(curves[1][:, 1], curves[0][:, 1], atol=1e-3, err_msg=model)
        assert results[1][model]["test"]["ndcg@20"] == pytest.approx(
            results[0][model]["test"]["ndcg@20"], abs=1e-3
        ), model
    assert results[1]["popularity"]["test"] == results[0]["popularity"]["test"]
    assert not list(tiny_run.glob("clarec-rank-*"))  # the other rank wrote nothing in the run folder
    assert (
        "Command: `clarec run cfg.yaml --out two --nproc 2`" in (tiny_run / "two" / "results.md").read_text()
    )


def _torchrun(script: str) -> subprocess.CompletedProcess:
    """``script`` (a file beside this one) on 2 gloo processes."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        + [str(Path(__file__).with_name(script))],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )


def test_a_killed_rank_fails_the_run_quickly(tmp_path):
    start = time.perf_counter()
    done = _torchrun("_ddp_kill.py")
    assert done.returncode != 0
    assert time.perf_counter() - start < 60
    assert "Signal 9 (SIGKILL)" in done.stderr or "exitcode  : -9" in done.stderr, done.stderr[-2000:]


def test_a_loss_that_diverges_on_one_rank_stops_every_rank(tmp_path):
    done = _torchrun("_ddp_diverge.py")  # a hang ends in the time-out
    # the behaviour, not the exit status: now and then a rank aborts in the interpreter's shutdown
    # after all of its work ("terminate called without an active exception", gloo's threads)
    for rank in (0, 1):
        assert f"rank {rank}: diverged" in done.stdout and f"rank {rank}: then decided" in done.stdout


def test_a_blend_of_a_torch_model_trains_on_two_gloo_processes_as_on_one(tiny_run):
    # every rank fits the blend's torch members, as rank 0 does: its own, and not the one the run
    # shares with it (a fit on one rank alone would pair its gradient all-reduce with nothing)
    config = yaml.safe_load((tiny_run / "cfg.yaml").read_text())
    bpr = {"name": "bpr", "params": {"embedding_dim": 16, "epochs": 2, "batch_size": 512, "lr": 0.01}}
    other = {"name": "bpr", "params": bpr["params"] | {"lr": 0.02}}  # a member of the blend's own
    blend = {"name": "blend", "params": {"members": [bpr, other, {"name": "popularity"}], "grid": 2}}
    config["models"] = [bpr, blend]
    (tiny_run / "blend.yaml").write_text(yaml.safe_dump(config))
    results = []
    for out, extra in (("blend-one", []), ("blend-two", ["--nproc", "2"])):
        done = _clarec(tiny_run, "run", "blend.yaml", "--out", out, *extra)
        assert done.returncode == 0, done.stderr[-2000:]
        results.append(json.loads((tiny_run / out / "results.json").read_text()))
    for model in ("bpr", "blend"):
        assert results[1][model]["test"]["ndcg@20"] == pytest.approx(
            results[0][model]["test"]["ndcg@20"], abs=1e-3
        ), model
    members = tiny_run / "blend-two" / "train" / "blend" / "seed-7"
    assert (members / "1-bpr").is_dir() and not (members / "0-bpr").exists()  # the first one shared


def test_sasrec_trains_on_two_gloo_processes_as_on_one(tiny_run):
    # the ranks' slices hold different numbers of targets (sequences differ in length): the loss of
    # the global batch is the mean over all of its targets, as in one process
    config = yaml.safe_load((tiny_run / "cfg.yaml").read_text())
    params = {"embedding_dim": 16, "n_heads": 2, "inner_size": 32, "dropout": 0.0, "epochs": 2}
    config["models"] = [{"name": "sasrec", "params": params | {"batch_size": 32, "max_len": 20}}]
    (tiny_run / "sasrec.yaml").write_text(yaml.safe_dump(config))
    curves = []
    for out, extra in (("sasrec-one", []), ("sasrec-two", ["--nproc", "2"])):
        done = _clarec(tiny_run, "run", "sasrec.yaml", "--out", out, *extra)
        assert done.returncode == 0, done.stderr[-2000:]
        log = (tiny_run / out / "train" / "sasrec" / "seed-7" / "log.txt").read_text().splitlines()
        curves.append([float(line.split()[3]) for line in log if line.startswith("epoch")])
    assert len(curves[0]) == 2
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-4)


def test_tune_on_two_gloo_processes_makes_the_choices_of_one(tiny_run):
    optuna = pytest.importorskip("optuna")
    config = yaml.safe_load((tiny_run / "cfg.yaml").read_text())
    config["models"] = [
        {
            "name": "lightgcn",
            "params": {"embedding_dim": 16, "n_layers": 1, "epochs": 4, "batch_size": 512},
            "search": {"lr": {"low": 0.0005, "high": 0.05, "log": True}},
        },
        {"name": "ease", "search": {"reg": [10.0, 300.0]}},
    ]
    config["tuning"] = {"trials": 5, "seeds": 1, "pruning": True}
    (tiny_run / "tune.yaml").write_text(yaml.safe_dump(config))
    for out, extra in (("tune-one", []), ("tune-two", ["--nproc", "2"])):
        done = _clarec(tiny_run, "tune", "tune.yaml", "--out", out, *extra)
        assert done.returncode == 0, done.stderr[-2000:]
    trials = {}
    for out in ("tune-one", "tune-two"):
        study = optuna.load_study(study_name="lightgcn", storage=f"sqlite:///{tiny_run / out / 'tune.db'}")
        trials[out] = [(t.state.name, t.params, t.intermediate_values, t.value) for t in study.trials]
    one, two = trials["tune-one"], trials["tune-two"]
    assert len(one) == len(two) == 5
    assert "PRUNED" in [t[0] for t in one]  # the pruning decision went from rank 0 to the other rank
    for a, b in zip(one, two, strict=True):
        assert a[:2] == b[:2]  # the same settings drawn, the same trials pruned
        assert list(a[2]) == list(b[2])  # stopped at the same epoch
        np.testing.assert_allclose(list(b[2].values()), list(a[2].values()), atol=1e-3)
    records = [json.loads((tiny_run / out / "tune.json").read_text()) for out in ("tune-one", "tune-two")]
    assert records[0]["models"]["lightgcn"]["best_params"] == records[1]["models"]["lightgcn"]["best_params"]
    assert records[0]["models"]["ease"]["best_params"] == records[1]["models"]["ease"]["best_params"]
    results = [
        json.loads((tiny_run / out / "final" / "results.json").read_text())
        for out in ("tune-one", "tune-two")
    ]
    assert results[1]["lightgcn"]["test"]["ndcg@20"] == pytest.approx(
        results[0]["lightgcn"]["test"]["ndcg@20"], abs=1e-3
    )
