"""The BPR setting of configs/amazon-gift-cards.yaml, chosen on validation only.

Usage:
    python benchmarks/bpr_gift_cards_sweep.py

Gift Cards is tiny (458 users, 2,972 reviews): at batch 2048 an epoch is two steps and early stopping
ends BPR while it is still undertrained, so its figures swing with the seed
(benchmarks/results/recipe-stability.md). Every grid point is trained with seeds 2024-2026 and
scored on the validation split only; the setting with the best mean validation NDCG@20 is the one
the config ships. Test figures are never computed here.
"""

from __future__ import annotations

import itertools

import numpy as np

from clarec.config import load_config
from clarec.evaluate import Evaluator
from clarec.experiment.runner import prepare_data
from clarec.models import create

SEEDS = (2024, 2025, 2026)


def main() -> None:
    split = prepare_data(load_config("configs/amazon-gift-cards.yaml")).split
    evaluator = Evaluator(split, ks=[20])
    rows = []
    for batch, lr, patience in itertools.product([2048, 256, 64], [1e-3, 5e-3], [10, 30]):
        vals = []
        for seed in SEEDS:
            params = {"embedding_dim": 32, "epochs": 300, "patience": patience, "batch_size": batch, "lr": lr}
            model = create("bpr", params | {"seed": seed, "progress": False, "num_threads": 1})
            model.fit(split.train, valid=split.valid)
            vals.append(evaluator.evaluate(model, part="valid").metrics["ndcg@20"])
        rows.append((float(np.mean(vals)), batch, lr, patience, vals))
        print(
            f"batch {batch} lr {lr} patience {patience}: valid ndcg@20 {np.round(vals, 4)} mean {np.mean(vals):.4f}"
        )
    best = max(rows)
    print(
        f"chosen on validation: batch_size {best[1]}, lr {best[2]}, patience {best[3]} (mean {best[0]:.4f})"
    )


if __name__ == "__main__":
    main()
