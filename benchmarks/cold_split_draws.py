"""How much of a cold-start config's spread over split seeds is the draw itself.

For each seed, the config's cold-start split is drawn as ``benchmarks/recipe_stability.py`` draws it
(the seed draws the split), once as the config says and once with ``stratify: true`` (the new items
drawn across popularity, ``clarec.data.split.cold_start_split``), and the parameter-free
``popularity`` model is scored: over every pair, and over the pairs of trained items only (the new
items' pairs removed). Popularity scores every new item 0, so its figure over every pair follows the
share of pairs that fall on new items — which depends on which items the seed happened to hold out —
while over the trained items' pairs it measures the model alone. Which way of drawing is steadier is
read on validation; test is then scored once, for the draw chosen (lowest / mean over the seeds, every
pair, the higher wins).

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


def popularity_figures(split, model, part: str, metric: str) -> tuple[float, float, float, int]:
    """``model``'s ``metric`` on ``part`` over every pair and over the trained items' pairs, the share
    of pairs on new items and the number of pairs."""
    k = int(metric.split("@")[1])
    data = split.valid if part == "valid" else split.test
    pairs = data.interactions
    new = np.isin(pairs["item"].to_numpy(), split.cold_items)
    every = Evaluator(split, ks=[k]).evaluate(model, part=part).metrics[metric]
    kept = dataclasses.replace(split, **{part: data.with_interactions(pairs[~new])})
    trained = Evaluator(kept, ks=[k]).evaluate(model, part=part).metrics[metric]
    return every, trained, float(new.mean()), len(pairs)


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
    rows, figures = [], {}
    for draw in ("as configured", "stratified"):
        for seed in args.seeds:
            seeded_raw = seeded(raw, seed)
            if draw == "stratified":
                seeded_raw["split"] = seeded_raw["split"] | {"stratify": True}
            split = prepare_data(load_config(raw=seeded_raw)).split
            if len(split.cold_items) == 0:
                raise SystemExit(f"{args.config}: its split holds no items out (not a cold-start split)")
            model = create("popularity", {}).fit(split.train)
            figures[draw, seed] = split, model
            every, trained, share, pairs = popularity_figures(split, model, "valid", metric)
            rows.append(f"| {draw} | {seed} | {pairs} | {share:.3f} | {every:.4f} | {trained:.4f} |")

    def column(draw: str, part: str, which: int) -> list[float]:
        return [popularity_figures(*figures[draw, seed], part, metric)[which] for seed in args.seeds]

    def spread(v: list[float]) -> str:
        return f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}, lowest / mean {min(v) / np.mean(v):.3f}"

    def steadiness(draw: str) -> float:
        v = column(draw, "valid", 0)
        return min(v) / float(np.mean(v))

    chosen = max(("as configured", "stratified"), key=steadiness)
    lines = [
        f"# Cold-start split draws: `{args.config}`",
        "",
        f"Each seed draws the split; `popularity` (no parameters), {metric}. The draw is chosen on validation "
        "(the higher lowest / mean over the seeds, every pair); test is scored once, for it.",
        "",
        f"| draw | seed | validation pairs | share on new items | validation {metric}, every pair | "
        f"validation {metric}, trained items' pairs |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *[
            f"- {draw}, validation: every pair {spread(column(draw, 'valid', 0))}; "
            f"trained items' pairs {spread(column(draw, 'valid', 1))}."
            for draw in ("as configured", "stratified")
        ],
        f"- chosen on validation: {chosen}. Its test figures: every pair {spread(column(chosen, 'test', 0))}; "
        f"trained items' pairs {spread(column(chosen, 'test', 1))}.",
    ]
    write_result(args.result_md, lines, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
