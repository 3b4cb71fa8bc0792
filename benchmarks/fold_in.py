"""How the graph models fold in a history, chosen on validation.

A served user with new events is scored from their history (``score_histories``), not from a trained
user vector. For every graph model of a config (trained once, with the config's settings and seed),
each training user's own training history is folded in and the validation part is ranked from it,
three ways: the trained user vector (what fold-in tries to reproduce), the mean of the history's final
item vectors (clarec's fold-in before 2026-12-07), and the model's own fold-in (a history propagated
as the graph propagates a user: ``clarec.models.graph``). Validation figures only; nothing is scored on
test.

Usage:
    CLAREC_DATA=../shared/datasets python benchmarks/fold_in.py configs/ml-100k-graph.yaml \\
        benchmarks/results/fold-in.md [--models lightgcn sgl simgcl xsimgcl]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _machine import write_result

from clarec.config import load_config
from clarec.evaluate import Evaluator
from clarec.experiment.runner import prepare_data
from clarec.models import create
from clarec.models.graph import _GraphRecommender


class _Queries:
    """A fitted model scored from other user vectors (its own scoring otherwise)."""

    def __init__(self, model, queries: np.ndarray):
        self.model, self.queries = model, queries

    def score(self, users) -> np.ndarray:
        return self.model._scores(self.queries[np.asarray(users)])

    def __getattr__(self, name):
        return getattr(self.model, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("result_md")
    ap.add_argument("--models", nargs="+", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = load_config(args.config)
    metric = cfg.evaluation.main_metric
    split = prepare_data(cfg).split
    ev = Evaluator(split, ks=[int(metric.split("@")[1])], metrics=[metric.split("@")[0]])
    histories = split.train.user_histories()
    rows = []
    for m in cfg.models:
        if args.models and m.key not in args.models:
            continue
        model = create(m.name, {**m.params, "seed": cfg.seed, "num_threads": 1, "progress": False})
        if not isinstance(model, _GraphRecommender):
            continue
        model.fit(split.train, valid=split.valid)
        vecs = model.item_vecs.astype(np.float64)
        mean = np.stack([vecs[h].mean(axis=0) if len(h) else np.zeros(vecs.shape[1]) for h in histories])
        figures = [
            ev.evaluate(model, part="valid").metrics[metric],
            ev.evaluate(_Queries(model, mean.astype(np.float32)), part="valid").metrics[metric],
            ev.evaluate(_Queries(model, model._history_vectors(histories)), part="valid").metrics[metric],
        ]
        rows.append(
            f"| {m.key} | {model.history_mode} | " + " | ".join(f"{v:.4f}" for v in figures) + f" | "
            f"{figures[2] - figures[1]:+.4f} |"
        )
        print(rows[-1], flush=True)
    lines = [
        f"# Graph models' fold-in: `{args.config}`",
        "",
        f"Validation {metric}, each training user ranked from their own training history; one fit per "
        f"model (the config's settings, seed {cfg.seed}).",
        "",
        "| model | history mode | trained user vector | mean of the history's item vectors | "
        "model's fold-in (propagated) | propagated − mean |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ]
    write_result(args.result_md, lines, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
