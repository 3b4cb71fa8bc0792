"""What one leaderboard cell costs on this machine, measured before it is run: for each data set of
``benchmarks/suite.yaml`` named, each model's seconds per training epoch with the per-epoch
validation the search does (torch models: ``--epochs`` epochs, the median of all but the first; with
one epoch, that epoch, warm-up included) or seconds per fit and validation (closed-form and neighbour
models), one torch thread, at the middle of the model's search space (a range's mean, geometric
where it is searched on a log scale; a list's middle element). From that, the hours one cell would
take: ``trials + seeds`` fits, each of ``--assume-epochs`` epochs for the torch models. For deciding
which data sets the 2-core budget allows (issue 12); the leaderboard's own cells are not touched,
and only a validation figure is computed (as the search does), never a test figure.

Each measurement runs in its own process, stopped after ``--max-seconds`` (the table then says
"more than"). Item texts are encoded once and cached (``~/.cache/clarec``): a text model's first
measurement on a data set includes the encoding when the cache is cold.

    CLAREC_DATA=../shared/datasets python benchmarks/leaderboard_cost.py benchmarks/suite.yaml \\
        --datasets beauty [--models bpr lightgcn] [--epochs 2] [--assume-epochs 50] [--max-seconds 1200] \\
        --result benchmarks/results/leaderboard-cost.md
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _machine import write_result
from leaderboard import dataset_config, dataset_models, load_suite

#: Training-length settings: the measurement sets its own.
NOT_SHOWN = {"epochs", "patience", "min_epochs", "num_threads"}


def middle(spec) -> object:
    """The middle of a search-space entry: a list's middle element, a range's (geometric) mean."""
    if isinstance(spec, list):
        return spec[(len(spec) - 1) // 2]
    low, high = float(spec["low"]), float(spec["high"])
    value = math.sqrt(low * high) if spec.get("log") else (low + high) / 2
    return round(value) if isinstance(spec["low"], int) and isinstance(spec["high"], int) else value


def measure(config: Path, model: str, epochs: int) -> dict:
    """One measurement (in the child process): fit ``model`` of ``config`` on its training part,
    validating as the search does."""
    import torch

    from clarec.config import load_config
    from clarec.evaluate import Evaluator
    from clarec.experiment.runner import prepare_data
    from clarec.models import create
    from clarec.models.registry import get_model_class
    from clarec.models.torch_base import TorchRecommender

    torch.set_num_threads(1)
    cfg = load_config(config)
    split = prepare_data(cfg).split
    entry = next(m for m in cfg.models if m.key == model)
    params = dict(entry.params or {}) | {k: middle(v) for k, v in (entry.search or {}).items()}
    if issubclass(get_model_class(entry.name), TorchRecommender):
        recommender = create(
            entry.name, params | {"epochs": epochs, "patience": epochs + 1, "progress": False}
        )
        recommender.fit(split.train, split.valid)
        seconds = recommender.history_.seconds
        return {"params": params, "per_epoch": statistics.median(seconds[1:] or seconds)}
    recommender = create(entry.name, params)
    start = time.perf_counter()
    recommender.fit(split.train)
    Evaluator(split, ks=cfg.evaluation.ks, metrics=["ndcg"]).evaluate(recommender, "valid")
    return {"params": params, "per_fit": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", type=Path)
    ap.add_argument("--datasets", nargs="+", required=True)
    ap.add_argument("--models", nargs="*", default=[])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--assume-epochs", type=int, default=50)
    ap.add_argument("--max-seconds", type=float, default=1200.0)
    ap.add_argument("--result", type=Path)
    ap.add_argument("--one", nargs=2, metavar=("CONFIG", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one[0]), args.one[1], args.epochs)))
        return

    if args.result is None:
        raise SystemExit("--result is needed")
    suite = load_suite(args.suite)
    fits = suite["trials"] + suite["seeds"]
    t0 = time.perf_counter()
    lines = [
        "# What one leaderboard cell costs",
        "",
        f"One torch thread; each model at the middle of its search space in `{args.suite.as_posix()}`. "
        "Torch models: seconds per epoch, validation included ("
        + (
            "one epoch, warm-up included"
            if args.epochs == 1
            else f"median of the {args.epochs - 1} after the first"
        )
        + f"); a cell is {suite['trials']} trials + {suite['seeds']} seeds = {fits} fits, "
        f"assumed {args.assume_epochs} epochs each (their caps are higher, early stopping ends most fits "
        "sooner or later than that). Other models: seconds per fit and validation. Measurements over "
        f"{args.max_seconds:.0f} s were stopped. Nothing here is tuned or chosen.",
    ]
    for name in args.datasets:
        # every model of the family, skipped ones too: their cost is what a skip's reason rests on
        # (not the blend cells: a blend costs what its members' final seeds cost)
        models = [m for m in dataset_models(suite, suite["datasets"][name]) if "blend_of" not in m]
        config = dataset_config(suite, name) | {"models": models}
        lines += [
            "",
            f"## {name}",
            "",
            "| model | seconds | one cell, hours | settings measured |",
            "|---|---:|---:|---|",
        ]
        total, stopped = 0.0, 0
        with tempfile.TemporaryDirectory(prefix="clarec-cost-") as tmp:
            path = Path(tmp) / "config.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            for entry in config["models"]:
                model = entry.get("label") or entry["name"]
                if args.models and model not in args.models:
                    continue
                cmd = [sys.executable, __file__, str(args.suite), "--datasets", name]
                cmd += ["--epochs", str(args.epochs), "--one", str(path), model]
                try:
                    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.max_seconds)
                except subprocess.TimeoutExpired:
                    hours = fits * args.max_seconds / 3600
                    lines.append(f"| {model} | > {args.max_seconds:.0f} (stopped) | > {hours:.1f} | |")
                    total, stopped = total + hours, stopped + 1
                    print(lines[-1], flush=True)
                    continue
                if done.returncode != 0:
                    raise SystemExit(f"{name} {model} failed:\n{done.stderr[-3000:]}")
                m = json.loads(done.stdout.strip().splitlines()[-1])
                if "per_epoch" in m:
                    seconds, hours = m["per_epoch"], fits * args.assume_epochs * m["per_epoch"] / 3600
                    shown = f"{seconds:.1f} per epoch"
                else:
                    seconds, hours = m["per_fit"], fits * m["per_fit"] / 3600
                    shown = f"{seconds:.1f} per fit"
                total += hours
                shown_params = {k: v for k, v in m["params"].items() if k not in NOT_SHOWN}
                settings = ", ".join(
                    f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in shown_params.items()
                )
                lines.append(f"| {model} | {shown} | {hours:.2f} | {settings} |")
                print(lines[-1], flush=True)
        lines += [
            "",
            f"All models: {'more than ' if stopped else ''}{total:.0f} core-hours for this data set.",
        ]
    write_result(args.result, lines, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
