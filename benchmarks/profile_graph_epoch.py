"""Where a clarec graph model's training epoch spends its time (cProfile + torch.profiler).

Fits the model for a few epochs without validation on a split folder (the same setting
peers/recbole_compare.py times) and prints (1) cProfile's top functions by cumulative and own time
and (2) torch.profiler's top operators by self CPU time (forward and backward ops separately).

``--what-if-symmetric`` measures, without touching the model code, what a symmetric sparse product
would save: ``torch.sparse.mm(adj, dense)`` with a CSR ``adj`` is routed through an autograd
function whose backward is ``adj @ grad`` (valid because every adjacency the graph models build,
``D^-1/2 A D^-1/2`` of an undirected graph, is symmetric) instead of autograd's ``adj.t() @ grad``,
which re-transposes the CSR matrix (COO conversion + sort) for every layer of every batch. It fits
the model alternately with and without the patch, checks the per-epoch losses agree, and prints
the epoch seconds of both.

Usage:
    .venv/bin/python benchmarks/profile_graph_epoch.py --split runs/peers-recbole/split --model lightgcn
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path

import torch

import clarec.train.loop as loop
from clarec.config import load_config
from clarec.data.split import load_predefined_split
from clarec.models.registry import create


class _SymmetricSpMM(torch.autograd.Function):
    """``adj @ dense`` for a constant symmetric sparse ``adj``: the backward is ``adj @ grad``."""

    @staticmethod
    def forward(ctx, adj, dense):
        ctx.adj = adj
        return _ORIGINAL_MM(adj, dense)

    @staticmethod
    def backward(ctx, grad):
        return None, _ORIGINAL_MM(ctx.adj, grad)


_ORIGINAL_MM = torch.sparse.mm


def _symmetric_mm(adj, dense):
    if adj.layout == torch.sparse_csr and not adj.requires_grad and dense.requires_grad:
        return _SymmetricSpMM.apply(adj, dense)
    return _ORIGINAL_MM(adj, dense)


def what_if(fit, args) -> None:
    fit()  # warm-up
    runs: dict[str, list[float]] = {"as is": [], "symmetric backward": []}
    losses: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for label, mm in (("as is", _ORIGINAL_MM), ("symmetric backward", _symmetric_mm)):
            torch.sparse.mm = mm
            try:
                model = fit()
            finally:
                torch.sparse.mm = _ORIGINAL_MM
            runs[label] += model.history_.seconds
            losses[label] = model.history_.losses
    for label, secs in runs.items():
        med = sorted(secs)[len(secs) // 2]
        print(
            f"{args.model} {label}: median {med:.3f} s/epoch over {len(secs)} epochs; losses {losses[label]}"
        )
    same = all(abs(a - b) <= 1e-4 * max(1.0, abs(a)) for a, b in zip(*losses.values(), strict=True))
    print(f"losses agree (rel 1e-4): {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", type=Path, required=True)
    ap.add_argument("--model", default="lightgcn")
    ap.add_argument("--config", default="configs/ml-100k-graph.yaml", help="model settings")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--what-if-symmetric", action="store_true", help="time the symmetric-backward patch")
    ap.add_argument("--repeats", type=int, default=3, help="alternations for --what-if-symmetric")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    loop.set_torch_threads = lambda n=None: (torch.set_num_threads(args.threads), args.threads)[1]
    split = load_predefined_split(args.split)
    cfg = load_config(args.config)
    params = next(dict(m.params) for m in cfg.models if m.name == args.model)
    params.update(embedding_dim=64, batch_size=2048, seed=2024, progress=False, epochs=args.epochs)
    params["patience"] = args.epochs
    if args.model != "bpr":
        params.update(n_layers=3, num_threads=args.threads)

    def fit():
        model = create(args.model, params)
        model.fit(split.train, valid=None)
        return model

    if args.what_if_symmetric:
        what_if(fit, args)
        return
    fit()  # warm-up
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    model = fit()
    prof.disable()
    wall = time.perf_counter() - start
    secs = model.history_.seconds
    print(f"{args.model}: epochs {[round(s, 3) for s in secs]}; fit {wall:.2f}s (epochs {sum(secs):.2f}s)")
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(args.top)
        print(f"\n=== cProfile by {key} ===")
        print(buf.getvalue())

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as tp:
        fit()
    print("\n=== torch.profiler, top operators by self CPU time ===")
    print(tp.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
