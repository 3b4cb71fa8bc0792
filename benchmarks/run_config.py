"""Run an experiment config and write its comparison table to benchmarks/results/.

Usage:
    python benchmarks/run_config.py configs/ml-100k.yaml benchmarks/results/ml-100k.md [--seeds 3] [--set k=v]
        [--models ease,bpr] [--split-seeds]

The result file names the command, the machine and the data root, then the table (test split,
mean ± std over seeds), validation NDCG, and fit seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _machine import command_line, data_root, machine_line

from clarec.config import load_config
from clarec.experiment.report import results_table
from clarec.experiment.runner import run_experiment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("result_md")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--models", default=None, help="run only these models of the config (comma-separated)")
    ap.add_argument("--split-seeds", action="store_true", help="each seed also draws the split")
    ap.add_argument("--out", default=None, help="run folder (default: a temporary folder)")
    args = ap.parse_args()

    cfg = load_config(args.config, args.overrides)
    if args.models:
        cfg = cfg.only(args.models.split(","))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="clarec-bench-"))
    t0 = time.perf_counter()
    results = run_experiment(cfg, out, seeds=args.seeds, split_seeds=args.split_seeds)
    total = time.perf_counter() - t0
    command = command_line()
    table = results_table(results, cfg)
    valid_metric = cfg.evaluation.main_metric
    valid_lines = "\n".join(
        f"- {name}: {r['valid'].get(valid_metric, float('nan')):.4f}" for name, r in results.items()
    )
    text = (
        f"{table}\n"
        f"Validation {valid_metric} (used for early stopping / model selection):\n\n{valid_lines}\n\n"
        f"Command: `{command}`  \n"
        f"Data root: `$CLAREC_DATA` = `{data_root()}`  \n"
        f"Machine: {machine_line()}; whole run {total:.0f} s.\n"
    )
    Path(args.result_md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.result_md).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
