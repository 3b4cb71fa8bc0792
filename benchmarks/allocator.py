"""Training steps with glibc's default allocator against ``clarec.train.keep_freed_memory`` (what every
fit does unless ``CLAREC_KEEP_MEMORY=0``): seconds per step, peak memory, and how
far the losses agree.

Each (model, setting) is a fresh process (the setting holds for a whole process), fitting ``--steps``
steps of one epoch without validation on the named config's data, one torch thread; rounds alternate
the order of the two settings. Nothing is chosen here.

Usage:
    CLAREC_DATA=../shared/datasets python benchmarks/allocator.py benchmarks/results/allocator.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from _machine import write_result

#: (model, config, steps, extra settings): the sequential models' full softmax over Beauty's
#: 12,101 items, AlphaRec's scores against every item, a graph model, BPR (Adam over dense
#: embedding tables) and the two-tower.
CASES = [
    ("sasrec", "configs/beauty-seq.yaml", 20, {}),
    ("text-seq", "configs/beauty-seq.yaml", 20, {"fields": ["title", "categories"]}),
    ("alpharec", "configs/beauty.yaml", 8, {}),
    ("lightgcn", "configs/beauty.yaml", 40, {}),
    ("bpr", "configs/beauty.yaml", 150, {}),
    ("two-tower", "configs/ml-100k.yaml", 20, {}),
]


def child(model: str, config: str, steps: int, extra: dict) -> None:
    import torch

    from clarec.config import load_config
    from clarec.experiment.runner import prepare_data
    from clarec.models.registry import create
    from clarec.train import keep_freed_memory

    torch.set_num_threads(1)
    data = prepare_data(load_config(config))
    m = create(model, {"epochs": 1, "max_steps": steps, "progress": False, "seed": 2024, **extra})
    m.fit(data.split.train)
    h = m.history_
    out = {
        "kept": keep_freed_memory(),
        "seconds_per_step": sum(h.seconds) / steps,
        "loss": h.losses[-1],
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    print("RESULT " + json.dumps(out), flush=True)


def measure(case, keep: bool) -> dict:
    model, config, steps, extra = case
    env = os.environ | {"CLAREC_KEEP_MEMORY": "1" if keep else "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", json.dumps([model, config, steps, extra])]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    if result["kept"] != keep:
        raise SystemExit(f"{model}: keep_freed_memory() is {result['kept']}, expected {keep}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result_md", nargs="?")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", nargs="+", help="a subset of the cases' models")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*json.loads(args.child))
        return
    if not args.result_md:
        ap.error("the result file is required")
    t0 = time.perf_counter()
    cases = [c for c in CASES if not args.models or c[0] in args.models]
    rows = []
    for case in cases:
        runs = {True: [], False: []}
        for r in range(args.rounds):
            for keep in (False, True) if r % 2 == 0 else (True, False):
                runs[keep].append(measure(case, keep))
                print(case[0], keep, runs[keep][-1], flush=True)
        base, kept = (statistics.median(x["seconds_per_step"] for x in runs[k]) for k in (False, True))
        default_losses = [x["loss"] for x in runs[False]]
        every = default_losses + [x["loss"] for x in runs[True]]
        rows.append(
            f"| {case[0]} | `{case[1]}` | {case[2]} | {base:.3f} | {kept:.3f} | {kept / base:.2f}× | "
            f"{max(x['peak_gib'] for x in runs[False]):.2f} | {max(x['peak_gib'] for x in runs[True]):.2f} | "
            f"{every[0]:.7f} | {max(default_losses) - min(default_losses):.1e} | {max(every) - min(every):.1e} |"
        )
    lines = [
        "# Training steps: glibc's allocator as it comes against `keep_freed_memory`",
        "",
        f"Each model fits its first steps (one torch thread, seed 2024, no validation) in a fresh process per "
        f"setting, {args.rounds} rounds in alternating order; seconds per step are the medians. `keep` is "
        "what every fit now does (`clarec.train.keep_freed_memory`: no memory mapping for large blocks, "
        "freed blocks kept for reuse); `CLAREC_KEEP_MEMORY=0` restores the default. Peak memory is the "
        "process's maximum resident set (data loading included). Loss: the last step's; its spread is "
        "the largest difference between runs, among the default's runs alone and among all runs (a "
        "vectorised sum may add in another order when its data lie at another address, so two runs "
        "of the same setting can differ in the last digits).",
        "",
        "| model | data (config) | steps | s/step default | s/step keep | keep / default | peak GiB default "
        "| peak GiB keep | loss | spread, default runs | spread, all runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    write_result(args.result_md, lines, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
