"""Training speed of the two-tower model: seconds per epoch on ML-100K with a frozen, cached encoder.

ML-100K, ratings >= 4, per-user random 8:1:1 split (seed 2024), the model's default parameters with
the bundled all-MiniLM-L6-v2 (its item vectors are read from the embedding cache after the first run).
Epochs run without validation, so an epoch is pure training; the median over the epochs is reported.
The machine may be shared with other jobs, so the load average is written next to the figure.

    python benchmarks/two_tower_speed.py --epochs 5 [--set embedding_dim=128 --set n_negatives=64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from _machine import command_line, machine_line

from clarec.data.loading import load_from_config
from clarec.data.split import random_split
from clarec.models._lm import item_texts
from clarec.models.two_tower import TwoTowerRecommender

RESULT = Path(__file__).parent / "results" / "two_tower_speed.md"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument(
        "--set", dest="overrides", action="append", default=[], help="model parameter k=v (JSON value)"
    )
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    params = {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value

    data = load_from_config({"name": "ml-100k", "min_rating": 4}).dataset
    split = random_split(data, (0.8, 0.1, 0.1), seed=2024)
    model = TwoTowerRecommender(**({"epochs": args.epochs, "progress": False} | params))
    t0 = time.perf_counter()
    texts = item_texts(split.train.items, model.fields, "two-tower")
    model._encoder().encode(texts)  # warm the cache so that fit() times training only
    encode_s = time.perf_counter() - t0
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    model.fit(split.train)
    fit_s = time.perf_counter() - t0
    load_after = os.getloadavg()
    per_epoch = statistics.median(model.history_.seconds)
    command = command_line()
    text = (
        "# Two-tower training speed (ML-100K, frozen cached encoder)\n\n"
        f"| examples | batch size | epochs | median s/epoch | min s/epoch | whole fit s |\n"
        f"|---|---|---|---|---|---|\n"
        f"| {split.train.n_interactions} | {model.batch_size} | {len(model.history_.seconds)} "
        f"| {per_epoch:.2f} | {min(model.history_.seconds):.2f} | {fit_s:.1f} |\n\n"
        f"Per-epoch seconds: {', '.join(f'{s:.2f}' for s in model.history_.seconds)}.  \n"
        f"Item texts: {len(texts)} ({encode_s:.1f} s to encode or read from the cache before fitting).  \n"
        f"Model: `{model!r}`  \n"
        f"Command: `{command}`  \n"
        f"Machine: {machine_line()}.  \n"
        f"Load average (1, 5, 15 min) before fit: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)} (the machine is shared with other jobs).\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
