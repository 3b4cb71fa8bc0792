"""XSimGCL on Gowalla (the LightGCN paper's own train/test files), next to the published LightGCN.

Usage (from the repository root, CLAREC_DATA pointing at the datasets):
    python benchmarks/gowalla_xsimgcl.py [--config configs/gowalla-xsimgcl.yaml] [--epochs N]
        [--out benchmarks/results/gowalla-xsimgcl.md]

Trains the config's model for a fixed number of epochs on the official training file (no validation
part exists, so no early stopping and no model selection on test), then ranks all items for every test
user (training items excluded) and reports Recall@20 and NDCG@20 with the training seconds per epoch
(the median over epochs). It takes tens of minutes on a 2-core machine, so it does not run in CI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from _machine import command_line, data_root, machine_line

from clarec.config import load_config
from clarec.evaluate.evaluator import Evaluator
from clarec.experiment.runner import prepare_data
from clarec.models import create

#: LightGCN paper (He et al., SIGIR 2020), Table 3, Gowalla: Recall@20, NDCG@20.
PUBLISHED_LIGHTGCN = {"recall@20": 0.1830, "ndcg@20": 0.1554}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/gowalla-xsimgcl.yaml")
    ap.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    ap.add_argument("--out", default="benchmarks/results/gowalla-xsimgcl.md")
    args = ap.parse_args()

    cfg = load_config(args.config)
    model_cfg = cfg.models[0]
    params = dict(model_cfg.params) | {"seed": cfg.seed, "progress": False}
    if args.epochs is not None:
        params["epochs"] = args.epochs

    t0 = time.perf_counter()
    data = prepare_data(cfg)
    split = data.split
    load_seconds = time.perf_counter() - t0
    print(f"data ready in {load_seconds:.1f}s: {split.describe()}", flush=True)
    evaluator = Evaluator(split, ks=cfg.evaluation.ks, metrics=cfg.evaluation.metrics)

    epochs = int(params["epochs"])
    model = create(model_cfg.name, params)
    model.fit(split.train)
    seconds = model.history_.seconds
    final = evaluator.evaluate(model, part="test").metrics
    print(f"{_fmt(final)}; {statistics.median(seconds):.1f} s/epoch", flush=True)

    command = command_line()
    lines = [
        f"# {model_cfg.key} on Gowalla (LightGCN's official split)",
        "",
        f"Data: `gowalla-lightgcn` train.txt / test.txt as shipped ({split.describe()['train']} training and "
        f"{split.describe()['test']} test interactions, {split.train.n_users} users, {split.train.n_items} "
        "items); full ranking of all items for every test user, training items excluded.",
        "",
        f"Model: `{model_cfg.name}` {_params(params)}; {epochs} epochs, no early stopping (the official "
        "files have no validation part); the figures are the last epoch's.",
        "",
        "| model | recall@20 | ndcg@20 | s/epoch (median) | epochs |",
        "|---|---:|---:|---:|---:|",
        f"| clarec {model_cfg.name} | {final['recall@20']:.4f} | {final['ndcg@20']:.4f} | "
        f"{statistics.median(seconds):.1f} | {epochs} |",
        f"| LightGCN, published (He et al. 2020, Table 3) | {PUBLISHED_LIGHTGCN['recall@20']:.4f} | "
        f"{PUBLISHED_LIGHTGCN['ndcg@20']:.4f} | | |",
        "",
    ]
    lines += [
        f"Command: `{command}`  ",
        f"Data root: `$CLAREC_DATA` = `{data_root()}`  ",
        f"Machine: {machine_line()}; load average at the end {_load()}; whole run "
        f"{time.perf_counter() - t0:.0f} s (data {load_seconds:.0f} s).",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


def _fmt(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k in ("recall@20", "ndcg@20"))


def _params(params: dict) -> str:
    keep = ("embedding_dim", "n_layers", "eps", "cl_layer", "ssl_weight", "ssl_temperature", "lr", "reg")
    return ", ".join(f"{k} {params[k]}" for k in keep if k in params) + f", batch {params.get('batch_size')}"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
