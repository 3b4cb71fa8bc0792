"""The full-softmax catalogue loss (``clarec.contrastive.CatalogueSoftmaxLoss``) and a sequential
model's training epoch, on the config's data (default: Amazon Beauty, next-item).

1. The loss alone, forward and backward, at the shape of an average training batch of the model
   (the targets of ``batch_size`` training windows × every item × ``embedding_dim``), random
   vectors: torch's ``cross_entropy`` on the product (what the loss computed before) against
   ``CatalogueSoftmaxLoss`` (its NumPy autograd function on the CPU). Both must give the same loss
   and gradients (checked). Alternating, ``--repeats`` times each, the median.
2. With ``--before SRC`` (the ``src`` folder of another checkout of clarec): the model's seconds per
   training epoch, validation included, for ``--epochs`` epochs with that tree and with this one,
   each in its own process (``PYTHONPATH``), in alternating order over ``--rounds`` rounds.

One torch / BLAS thread everywhere. Only a validation figure is computed, never a test figure.

    CLAREC_DATA=../shared/datasets python benchmarks/catalogue_loss_speed.py \\
        [--before <old checkout>/src] --result benchmarks/results/catalogue-loss-speed.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _machine import shown_path, write_result
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent


def commit(tree: Path) -> str:
    """The short commit a checkout is at."""
    return subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


def dirty(tree: Path) -> bool:
    """Whether the checkout's ``src`` differs from its commit."""
    out = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "src"], capture_output=True, text=True
    )
    return bool(out.stdout.strip())


def model_params(config: Path, model: str) -> dict:
    from clarec.config import load_config

    params = {m.name: m.params for m in load_config(config).models}[model]
    return {k: v for k, v in params.items() if k not in ("epochs", "patience")}


def epochs_seconds(config: Path, model: str, epochs: int) -> dict:
    """Fit ``model`` for ``epochs`` epochs with validation (in this process's clarec)."""
    import clarec
    from clarec.config import load_config
    from clarec.experiment.runner import prepare_data
    from clarec.models.registry import create

    split = prepare_data(load_config(config)).split
    params = model_params(config, model) | {"epochs": epochs, "num_threads": 1, "progress": False}
    fitted = create(model, params).fit(split.train, split.valid)
    return {
        "clarec": str(Path(clarec.__file__).parent.parent),
        "seconds": list(fitted.history_.seconds),
        "valid": list(fitted.history_.val_metrics),
    }


def loss_times(config: Path, model: str, repeats: int) -> tuple[list[str], dict]:
    from clarec.config import load_config
    from clarec.contrastive import CatalogueSoftmaxLoss
    from clarec.experiment.runner import prepare_data
    from clarec.models.sequential._base import training_windows

    params = model_params(config, model)
    train = prepare_data(load_config(config)).split.train
    windows = training_windows(train.user_histories(), params.get("max_len", 50))
    batch = params.get("batch_size", 256)
    n = int(round(sum(len(w) - 1 for w in windows) / -(-len(windows) // batch)))
    d, n_items = params.get("embedding_dim", 64), train.n_items
    g = torch.Generator().manual_seed(0)
    q0, e0 = torch.randn(n, d, generator=g) * 0.3, torch.randn(n_items, d, generator=g) * 0.3
    y = torch.randint(0, n_items, (n,), generator=g)

    def run(fn):
        q, e = q0.clone().requires_grad_(), e0.clone().requires_grad_()
        start = time.perf_counter()
        loss = fn(q, e)
        loss.backward()
        return time.perf_counter() - start, loss.detach(), q.grad, e.grad

    ways = {
        "torch cross_entropy on the product": lambda q, e: F.cross_entropy(q @ e.T, y),
        "CatalogueSoftmaxLoss": lambda q, e: CatalogueSoftmaxLoss()(q, e, y),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    results = {}
    for _ in range(repeats + 1):  # the first round warms up
        for name, fn in ways.items():
            t, *results[name] = run(fn)
            seconds[name].append(t)
    ref, got = results.values()
    for a, b in zip(ref, got, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    base = statistics.median(seconds[next(iter(ways))][1:])
    lines = [
        "## The loss alone",
        "",
        f"{n:,} queries (the targets of an average batch of {batch} training windows) × {n_items:,} items, "
        f"{d}-d random vectors; forward and backward; median of {repeats} after one warm-up, the two "
        "alternating; the same loss and gradients both ways (checked).",
        "",
        "| loss | ms per forward + backward | vs torch |",
        "|---|---:|---:|",
    ]
    for name in ways:
        med = statistics.median(seconds[name][1:])
        lines.append(f"| {name} | {med * 1000:.0f} | {med / base:.2f}× |")
    return lines, {k: v[1:] for k, v in seconds.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("configs/beauty-seq.yaml"))
    ap.add_argument("--model", default="sasrec")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--before", type=Path, help="src folder of the clarec to compare the epochs with")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--result", type=Path)
    ap.add_argument("--epochs-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.epochs_only:
        with threadpool_limits(1, user_api="blas"):
            print(json.dumps(epochs_seconds(args.config, args.model, args.epochs)))
        return
    if args.result is None:
        ap.error("--result is required")
    t0 = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        lines, _ = loss_times(args.config, args.model, args.repeats)
    lines = [f"# Catalogue softmax loss: {args.config.as_posix()}, {args.model}", "", *lines]
    if args.before is not None:
        trees = {"before": args.before.resolve(), "this tree": HERE.parent / "src"}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for r in range(args.rounds):
            for name in list(trees)[:: 1 if r % 2 == 0 else -1]:
                env = os.environ | {"PYTHONPATH": str(trees[name]), "OMP_NUM_THREADS": "1"}
                cmd = [sys.executable, __file__, "--config", str(args.config), "--model", args.model]
                cmd += ["--epochs", str(args.epochs), "--epochs-only"]
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
                runs[name].append(json.loads(out.strip().splitlines()[-1]))
        lines += [
            "",
            f"## {args.model}: seconds per training epoch, validation included",
            "",
            f"{args.epochs} epochs per fit, {args.rounds} fit(s) per tree, each in its own process, "
            f"alternating; the median over every epoch. *before*: `{shown_path(args.before)}`, "
            f"commit {commit(args.before)}; *this tree*: commit {commit(HERE.parent)}"
            f"{' (with changes not committed)' if dirty(HERE.parent) else ''}.",
            "",
            "| clarec | seconds per epoch | vs before | epochs (s) | valid ndcg@20 per epoch |",
            "|---|---:|---:|---|---|",
        ]
        base = statistics.median(s for run in runs["before"] for s in run["seconds"])
        for name, fits in runs.items():
            secs = [s for run in fits for s in run["seconds"]]
            med = statistics.median(secs)
            valid = "; ".join(", ".join(f"{v:.4f}" for v in run["valid"]) for run in fits)
            lines.append(
                f"| {name} | {med:.1f} | {med / base:.2f}× | {', '.join(f'{s:.1f}' for s in secs)} | {valid} |"
            )
    write_result(args.result, lines, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
