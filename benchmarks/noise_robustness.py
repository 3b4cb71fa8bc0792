"""Run a config at several training-noise levels and tabulate each model's NDCG@20 and its drop.

Usage:
    python benchmarks/noise_robustness.py configs/ml-100k-noise.yaml benchmarks/results/ml-100k-noise.md \
        [--levels 0 0.1 0.2] [--seeds 1] [--set k=v]

Each level is the config with ``split.noise`` set to it (false interactions added to the training part
only; see :func:`clarec.data.split.inject_noise`), run with :func:`clarec.experiment.runner.run_experiment`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _machine import command_line, machine_line

from clarec.config import load_config
from clarec.experiment.runner import run_experiment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("result_md")
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--metric", default="ndcg@20")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", default=None, help="parent of the run folders (default: a temporary folder)")
    args = ap.parse_args()

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="clarec-noise-"))
    t0 = time.perf_counter()
    per_level: dict[float, dict] = {}
    for level in args.levels:
        cfg = load_config(args.config, [*args.overrides, f"split.noise={level}"])
        per_level[level] = run_experiment(cfg, out / f"noise-{level:g}", seeds=args.seeds)
    models = list(next(iter(per_level.values())))
    base = args.levels[0]

    def cell(model: str, level: float) -> str:
        r = per_level[level][model]
        value = r["test"][args.metric]
        std = r.get("std", {}).get("test", {}).get(args.metric)
        text = f"{value:.4f}" + (f" ± {std:.4f}" if std is not None else "")
        if level != base:
            ref = per_level[base][model]["test"][args.metric]
            text += f" ({100 * (value - ref) / ref:+.1f}%)" if ref else ""
        return text

    head = ["model", *(f"noise {level:g}" for level in args.levels)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(args.levels)) + "|"]
    lines += ["| " + " | ".join([m, *(cell(m, lv) for lv in args.levels)]) + " |" for m in models]
    command = command_line()
    text = (
        f"# {load_config(args.config, args.overrides).name}: test {args.metric} under training noise\n\n"
        "Noise = random false interactions added to the training part only, as a share of its size "
        "(valid and test unchanged); in brackets the change from the first level.\n\n"
        + "\n".join(lines)
        + f"\n\nSeeds per level: {args.seeds}.  \nCommand: `{command}`  \n"
        f"Machine: {machine_line()}; whole run {time.perf_counter() - t0:.0f} s.\n"
    )
    Path(args.result_md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.result_md).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
