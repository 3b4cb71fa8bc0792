"""Seconds per training epoch of the torch models on the CPU and on a CUDA GPU (``device: cuda``,
in fp32 and in mixed precision, ``precision: bf16``), side by side on the same data, settings and seed.

The data is a synthetic set with ML-20M's shape at ``--scale`` (``clarec data synth``: needs no data
files, so it runs on a bare GPU machine), ratings >= 4, split 8:1:1 at random. Each model is trained
for ``--epochs`` epochs without validation, once per device; an epoch's seconds are the Trainer's
(``history_.seconds``), and the table gives the first epoch (warm-up: CUDA context, kernel
selection) and the median of the others. Nothing is tuned or chosen: the settings are ``MODELS``
below, fixed before any run. For the models scored as an inner product of user and item vectors
(``query_items``), the CPU-trained model's full-ranking evaluation of every test user is timed on
the CPU and with ``evaluation.device: cuda``; its NDCG@20 on both is printed only to show they agree
(these short trainings are not meant to be accurate).

    python benchmarks/gpu_epoch.py [--scale 0.05] [--epochs 2] [--threads 16] \\
        [--models lightgcn sgl bpr sasrec two-tower] [--result benchmarks/results/gpu-epoch.md]

Without a CUDA GPU the GPU columns say so and only the CPU runs are made.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _machine import REPO, write_result

#: One setting per model, fixed before any run (d = 64 everywhere, the libraries' usual batch sizes).
MODELS = {
    "lightgcn": {"embedding_dim": 64, "n_layers": 2, "batch_size": 8192},
    "sgl": {"embedding_dim": 64, "n_layers": 2, "batch_size": 8192, "ssl_weight": 0.1},
    "xsimgcl": {"embedding_dim": 64, "n_layers": 2, "batch_size": 8192},
    "bpr": {"embedding_dim": 64, "batch_size": 4096},
    "sasrec": {"embedding_dim": 64, "max_len": 50, "n_layers": 2, "n_heads": 2, "batch_size": 256},
    # the item texts are encoded once (bundled MiniLM; the embedding cache serves the later runs)
    "two-tower": {"embedding_dim": 64, "batch_size": 4096, "n_negatives": 128},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="ml-20m")
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="CPU torch threads (default: every core)")
    parser.add_argument(
        "--models", nargs="*", default=["lightgcn", "sgl", "bpr", "sasrec", "two-tower"], choices=list(MODELS)
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--result", type=Path, default=REPO / "benchmarks" / "results" / "gpu-epoch.md")
    args = parser.parse_args()

    import torch

    from clarec.data.loading import load_from_config
    from clarec.data.split import random_split
    from clarec.data.synth import synthesize
    from clarec.evaluate import Evaluator
    from clarec.models.registry import create
    from clarec.train.loop import set_torch_threads

    threads = set_torch_threads(args.threads)
    cuda = torch.cuda.is_available()
    gpu_name = torch.cuda.get_device_name(0) if cuda else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clarec-gpu-epoch-") as work:
        root = Path(work)
        info = synthesize(args.shape, root / args.shape, args.scale, args.seed)
        data = load_from_config({"name": args.shape, "min_rating": 4}, root=root).dataset
    split = random_split(data, (0.8, 0.1, 0.1), seed=args.seed)
    train = split.train
    print(
        f"data: {train.n_interactions:,} training interactions, {train.n_users:,} users, {train.n_items:,} items"
    )

    rows = []
    for name in args.models:
        row = {"model": name}
        runs = [("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "bf16")] if cuda else [("cpu", "fp32")]
        for device, precision in runs:
            params = MODELS[name] | {"epochs": args.epochs, "seed": args.seed, "progress": False}
            params |= {"device": device, "precision": precision, "num_threads": threads}
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            model = create(name, params).fit(train)
            seconds = model.history_.seconds
            run = f"{device} {precision}"
            row[run] = (seconds[0], statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0])
            if device == "cuda":
                row[f"{run} GiB"] = torch.cuda.max_memory_allocated() / 2**30
            print(f"{name} on {run}: epochs {', '.join(f'{s:.2f}' for s in seconds)} s", flush=True)
            if device == "cpu" and model.query_items() is not None:
                for ev_device in ("cpu", "cuda") if cuda else ("cpu",):
                    start = time.perf_counter()
                    ndcg = Evaluator(split, ks=[20], metrics=["ndcg"], device=ev_device).evaluate(model)
                    row[f"eval {ev_device}"] = (time.perf_counter() - start, ndcg.metrics["ndcg@20"])
                    print(
                        f"{name}: evaluation on {ev_device} {row[f'eval {ev_device}'][0]:.2f} s", flush=True
                    )
        rows.append(row)

    lines = [
        "# Seconds per training epoch: CPU and GPU",
        "",
        f"Data: synthetic, {args.shape}'s shape at scale {args.scale} (`clarec data synth`; {info['interactions']:,} "
        f"ratings), ratings >= 4, random 8:1:1 split, seed {args.seed}: {train.n_interactions:,} training "
        f"interactions, {train.n_users:,} users, {train.n_items:,} items. {args.epochs} epochs per model "
        "and device, no validation; settings fixed before the runs (`MODELS` in the script), the same on both devices.",
        "",
        f"CPU: {threads} torch threads. GPU: {gpu_name or 'none on this machine (GPU columns empty)'}.",
        "",
        "Each cell: first epoch s / median of the other epochs s; GPU cells also the ratio of that median"
        " to the CPU's and the peak GPU memory.",
        "",
        "| model | settings | CPU fp32 | GPU fp32 | GPU bf16 (mixed precision) |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        cpu_epoch = row["cpu fp32"][1]
        cells = [f"{row['cpu fp32'][0]:.2f} / {cpu_epoch:.2f}"]
        for run in ("cuda fp32", "cuda bf16"):
            first, epoch = row.get(run, (None, None))
            cells.append(
                "—"
                if first is None
                else f"{first:.2f} / {epoch:.2f} ({epoch / cpu_epoch:.3f}×, {row[run + ' GiB']:.2f} GiB)"
            )
        settings = ", ".join(f"{k} {v}" for k, v in MODELS[row["model"]].items())
        lines.append(f"| {row['model']} | {settings} | {' | '.join(cells)} |")
    evaluated = [row for row in rows if "eval cpu" in row]
    if evaluated:
        lines += [
            "",
            f"Full-ranking evaluation of the {split.test.n_users:,}-user test part (all {train.n_items:,} items, "
            "training items masked) of each CPU-trained model, seconds (NDCG@20 on each, to show they agree):",
            "",
            "| model | CPU | GPU (`evaluation.device: cuda`) |",
            "|---|---:|---:|",
        ]
        for row in evaluated:
            cells = [
                f"{row[f'eval {d}'][0]:.2f} ({row[f'eval {d}'][1]:.4f})" if f"eval {d}" in row else "—"
                for d in ("cpu", "cuda")
            ]
            lines.append(f"| {row['model']} | {' | '.join(cells)} |")
    write_result(args.result, lines, time.perf_counter() - t0, data=False)


if __name__ == "__main__":
    main()
