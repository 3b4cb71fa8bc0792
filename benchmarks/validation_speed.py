"""Seconds per in-training validation (``RankingValidator``, full ranking) on Amazon Beauty, with the
scores made by torch's product (what the graph models, BPR, AlphaRec and the sequential models did)
and by ``clarec.train.validation.dot_scores`` (NumPy's product on the CPU, what they do now).

The validation users, their training items (masked) and their held-out items are Beauty's
leave-one-out split (22,363 users, 12,101 items); the vectors are random (``--dim``, default 64): only
the time depends on them, and the two ways must give the same NDCG@20 (checked). The two run
alternately, ``--repeats`` times each, one torch / BLAS thread; the median is reported. Also the
product alone for one block of 1,024 users against the catalogue, in GFLOP/s.

    CLAREC_DATA=../shared/datasets python benchmarks/validation_speed.py \\
        --result benchmarks/results/validation-speed.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _machine import write_result
from threadpoolctl import threadpool_limits

from clarec.config import load_config
from clarec.experiment.runner import prepare_data
from clarec.train.validation import RankingValidator, dot_scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("configs/beauty-seq.yaml"))
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--result", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    split = prepare_data(load_config(args.config)).split
    train, valid = split.train, split.valid
    validator = RankingValidator(train.to_csr(), valid.to_csr(), k=20)
    g = torch.Generator().manual_seed(0)
    users = torch.randn(train.n_users, args.dim, generator=g)
    items = torch.randn(train.n_items, args.dim, generator=g)
    ways = {
        "torch product": lambda rows: (users[torch.from_numpy(rows)] @ items.T).cpu().numpy(),
        "dot_scores (NumPy product)": dot_scores(users, items),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    ndcg = {}
    with threadpool_limits(1, user_api="blas"):
        for _ in range(args.repeats):
            for name, fn in ways.items():
                start = time.perf_counter()
                ndcg[name] = validator(fn)
                seconds[name].append(time.perf_counter() - start)
        block = np.arange(min(1024, train.n_users))
        flops = 2 * len(block) * args.dim * train.n_items
        gflops = {}
        for name, fn in ways.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn(block)
                times.append(time.perf_counter() - start)
            gflops[name] = flops / statistics.median(times) / 1e9
    values = list(ndcg.values())
    if abs(values[0] - values[1]) > 1e-6:
        raise SystemExit(f"the two ways disagree: {ndcg}")
    base = statistics.median(seconds["torch product"])
    lines = [
        "# In-training validation: seconds per full-ranking validation",
        "",
        f"`{args.config.as_posix()}`'s data and split: {len(validator.users):,} validation users, "
        f"{train.n_items:,} items, their training items masked, NDCG@20; random {args.dim}-d vectors "
        f"(NDCG@20 {values[0]:.6f} both ways). One thread; median of {args.repeats}, the two ways "
        "alternating.",
        "",
        "| scores by | seconds per validation | vs torch | product of 1,024 users × catalogue, GFLOP/s |",
        "|---|---:|---:|---:|",
    ]
    for name in ways:
        med = statistics.median(seconds[name])
        lines.append(f"| {name} | {med:.2f} | {med / base:.2f}× | {gflops[name]:.1f} |")
    write_result(args.result, lines, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
