"""How strongly the contrastive term pulls against the next-item loss at the start of training.

For each (model, settings), the first training batch of a config's split (the model freshly
initialised, seed 1): the next-item cross-entropy, the weighted contrastive term, and the norm of
each one's gradient over the model's parameters. With Adam, whichever gradient is much larger sets the
direction of the first updates. No validation or test figure is computed: this chooses nothing; it
says which settings are worth comparing on validation.

Usage:
    CLAREC_DATA=../shared/datasets python benchmarks/ssl_gradient_balance.py configs/beauty-seq.yaml \\
        benchmarks/results/ssl-gradient-balance-beauty.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _machine import write_result

from clarec.config import load_config
from clarec.contrastive.catalogue import CatalogueSoftmaxLoss
from clarec.experiment.runner import prepare_data
from clarec.models import create

VARIANTS = [
    ("cl4srec", {}),
    ("cl4srec", {"ssl_similarity": "cos", "ssl_temperature": 0.2}),
    ("duorec", {}),
    ("duorec", {"ssl_similarity": "cos", "ssl_temperature": 0.2}),
]


def balance(split, name: str, params: dict) -> dict[str, float]:
    model = create(
        name, params | {"epochs": 1, "max_steps": 1, "progress": False, "seed": 1, "num_threads": 1}
    )
    original, found = model._extra_loss, {}

    def hook(rows, seq, states):
        ssl = original(rows, seq, states)
        if not found:
            weights = [p for p in model.module_.parameters() if p.requires_grad]
            inputs, targets = seq[:, :-1], seq[:, 1:]
            keep = (inputs > 0) & (targets > 0)
            ce = CatalogueSoftmaxLoss()(states[keep], model.module_.item_table(), targets[keep] - 1)

            def norm(loss):
                grads = torch.autograd.grad(loss, weights, retain_graph=True, allow_unused=True)
                return float(torch.sqrt(sum((g**2).sum() for g in grads if g is not None)))

            found.update(ce=float(ce), ssl=float(ssl), grad_ce=norm(ce), grad_ssl=norm(ssl))
            found["state_norm"] = float(states[:, -1].norm(dim=1).mean())
        return ssl

    model._extra_loss = hook
    model.fit(split.train)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("result_md", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = load_config(args.config)
    split = prepare_data(cfg).split
    base = {m.key: m.params for m in cfg.models}
    lines = [
        f"# Contrastive vs next-item gradient at the first batch: `{args.config}`",
        "",
        "Each model with the config's settings, then with the changes shown; seed 1, first batch.",
        "",
        "| model | changed | next-item loss | weighted contrastive term | grad norm, next-item | "
        "grad norm, contrastive | ratio | state norm |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, changed in VARIANTS:
        r = balance(split, name, dict(base.get(name, {})) | changed)
        lines.append(
            f"| {name} | {changed or '—'} | {r['ce']:.3f} | {r['ssl']:.3f} | {r['grad_ce']:.3f} | "
            f"{r['grad_ssl']:.3f} | {r['grad_ssl'] / r['grad_ce']:.1f} | {r['state_norm']:.1f} |"
        )
    write_result(args.result_md, lines, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
