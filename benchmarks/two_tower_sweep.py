"""One two-tower setting on ML-100K (ratings >= 4, random 8:1:1, seed 2024): test NDCG@20 and the
best validation NDCG@20 with its epoch. Used for hand sweeps; see results/two_tower_sweep.md.

Usage:
    python benchmarks/two_tower_sweep.py '{lr: 0.003, similarity: dot, temperature: 1.0}'
"""

from __future__ import annotations

import json
import sys
import time

import yaml

from clarec.data.loading import load_dataset
from clarec.data.split import random_split
from clarec.evaluate import Evaluator
from clarec.models import create

BASE = {"num_threads": 1, "progress": False, "seed": 2024, "epochs": 40, "patience": 4}


def main() -> None:
    params = yaml.safe_load(sys.argv[1]) if len(sys.argv) > 1 else {}
    split = random_split(load_dataset("ml-100k", min_rating=4).dataset, seed=2024)
    t = time.perf_counter()
    model = create("two-tower", BASE | params).fit(split.train, split.valid)
    ndcg = Evaluator(split, ks=[20]).evaluate(model).metrics["ndcg@20"]
    h = model.history_
    print(
        json.dumps(params),
        f"test ndcg@20 {ndcg:.4f}",
        f"best valid {h.best_metric:.4f}",
        f"epoch {h.best_epoch}",
        f"{time.perf_counter() - t:.0f}s",
        flush=True,
    )


if __name__ == "__main__":
    main()
