"""How much of a cold-start config's spread over split seeds is the draw itself.

For each seed, the config's cold-start split is drawn as ``benchmarks/recipe_stability.py`` draws it
(the seed draws the split), once as the config says and once with ``stratify: true`` (the new items
drawn across popularity, ``clarec.data.split.cold_start_split``), and the parameter-free
``popularity`` model is scored on test: over every test pair, and over the test pairs of trained
items only (the new items' pairs removed). Popularity scores every new item 0, so its figure over
every pair follows the share of test pairs that fall on new items — which depends on which items the
seed happened to hold out — while over the trained items' pairs it measures the model alone. Test
figures of a baseline with nothing to choose; nothing is selected on them.

Usage:
    CLAREC_DATA=../shared/datasets python benchmarks/cold_split_draws.py configs/ml-latest-small-cold.yaml \\
        benchmarks/results/cold-split-draws.md [--seeds 2024 2025 2026]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import yaml
from _machine import write_result
from recipe_stability import seeded

from clarec.config import load_config
from clarec.evaluate import Evaluator
from clarec.experiment.runner import prepare_data
from clarec.models import create


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("result_md")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2024, 2025, 2026])
    args = ap.parse_args()
    t0 = time.perf_counter()
    raw = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    cfg = load_config(args.config)
    metric = cfg.evaluation.main_metric
    k = int(metric.split("@")[1])
    rows, overall, warm = [], {}, {}
    for draw in ("as configured", "stratified"):
        for seed in args.seeds:
            seeded_raw = seeded(raw, seed)
            if draw == "stratified":
                seeded_raw["split"] = seeded_raw["split"] | {"stratify": True}
            split = prepare_data(load_config(raw=seeded_raw)).split
            if len(split.cold_items) == 0:
                raise SystemExit(f"{args.config}: its split holds no items out (not a cold-start split)")
            test = split.test.interactions
            new = np.isin(test["item"].to_numpy(), split.cold_items)
            model = create("popularity", {}).fit(split.train)
            every = Evaluator(split, ks=[k]).evaluate(model).metrics[metric]
            trained = dataclasses.replace(split, test=split.test.with_interactions(test[~new]))
            only_trained = Evaluator(trained, ks=[k]).evaluate(model).metrics[metric]
            overall.setdefault(draw, []).append(every)
            warm.setdefault(draw, []).append(only_trained)
            rows.append(
                f"| {draw} | {seed} | {len(test)} | {new.mean():.3f} | {every:.4f} | {only_trained:.4f} |"
            )

    def spread(v: list[float]) -> str:
        return f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}, lowest / mean {min(v) / np.mean(v):.3f}"

    summary = [
        f"- {draw}: every pair {spread(overall[draw])}; trained items' pairs {spread(warm[draw])}."
        for draw in overall
    ]
    lines = [
        f"# Cold-start split draws: `{args.config}`",
        "",
        f"Each seed draws the split; `popularity` (no parameters) scored on test, {metric}.",
        "",
        f"| draw | seed | test pairs | share on new items | popularity {metric}, every pair | "
        f"popularity {metric}, trained items' pairs |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *summary,
    ]
    write_result(args.result_md, lines, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
