"""How long a newcomer waits for the first table: ``make demo`` after set-up, timed end to end.

Usage (from the repository root, after ``make setup``, on an otherwise idle machine):
    CLAREC_DATA=../shared/datasets python benchmarks/first_minute.py benchmarks/results/first-minute.md [--runs 3]

Each run removes ``runs/demo`` and times ``make demo`` (data import, every model's fit and
evaluation, the table) with all cores, as a user types it. The result file gives the wall seconds of
each run, the per-model progress lines of the last run (validation figures) and its table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from _machine import REPO, command_line, data_root, machine_line

GOAL_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result_md", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not (REPO / ".venv" / ".clarec-installed").exists():
        raise SystemExit("run `make setup` first: this benchmark times the demo after set-up")
    walls, output = [], ""
    load_before = os.getloadavg()[0]
    for _ in range(args.runs):
        shutil.rmtree(REPO / "runs" / "demo", ignore_errors=True)
        start = time.perf_counter()
        done = subprocess.run(["make", "demo"], cwd=REPO, capture_output=True, text=True, env=os.environ)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(
                f"make demo failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        output = done.stdout + done.stderr
    progress = [line for line in output.splitlines() if line.startswith("[")]
    table = output[output.index("| model") : output.index("Command:")].strip()
    median = statistics.median(walls)
    lines = [
        "# The first minute: `make demo` after set-up",
        "",
        f"Wall seconds of `make demo` (fetch ML-100K from the data root, fit and evaluate "
        f"`configs/ml-100k-demo.yaml`'s models, print the table), {args.runs} runs: "
        + ", ".join(f"{w:.1f}" for w in walls)
        + f"; median **{median:.1f} s** (goal: about {GOAL_S:.0f} s; "
        + ("met" if median <= GOAL_S * 1.05 else "not met")
        + ").",
        "",
        "Progress lines of the last run (validation figures only):",
        "",
        "```",
        *progress,
        "```",
        "",
        "Its table (test split; the demo's two-tower trains 6 epochs, see the config; the full comparison "
        "is benchmarks/results/ml-100k.md):",
        "",
        table,
        "",
        f"Command: `{command_line()}`  ",
        f"Data root: {data_root()}  ",
        f"Machine: {machine_line()}; load average {load_before:.2f} before the runs, "
        f"{os.getloadavg()[0]:.2f} after",
        "",
    ]
    args.result_md.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
