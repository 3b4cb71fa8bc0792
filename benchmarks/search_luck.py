"""How much of a leaderboard cell's figure is the luck of its search: the cell's search run again
with other seeds of the search's sampler, everything else as the cell ran it.

Usage:
    CLAREC_DATA=../shared/datasets OMP_NUM_THREADS=1 python benchmarks/search_luck.py benchmarks/suite.yaml \\
        DATA_SET MODEL RESULT_MD [--search-seeds 3024 4024] [--runs runs/search-luck] [--records DIR]

Each search seed is the cell's config (``benchmarks/leaderboard.py``: the suite's space for the model
on that data set, its budget of trials, its final seeds over split and model) with
``tuning.search_seed`` set, so only the path of the TPE search moves: the trials' fits and the final
seeds are seeded as in the cell. The cell itself (the suite's seed) is read from its leaderboard record.
Only validation figures are read and written — the chosen settings and the validation figure of the
final seeds, what the leaderboard chooses on — never a test figure, so this says how far apart two
honest searches of the same cell land, not which of them to keep (``clarec tune``'s final run computes
test figures into its run folder, as every run does; its table, which shows them, is not printed and
nothing reads them). Each finished search seed is kept as
a record (default ``benchmarks/results/search-luck/<data set>/<model>-<seed>.json``, committed) so a
re-run only searches what is missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from _machine import command_line, data_root, machine_line
from _records import read_record, write_record
from leaderboard import RECORDS, cell_record, dataset_config, load_suite


def search_config(suite: dict, name: str, model: str, seed: int | None) -> dict:
    """The cell's experiment config with only ``model`` and the sampler's seed set (None: the cell's)."""
    config = dataset_config(suite, name)
    config["models"] = [m for m in config["models"] if (m.get("label") or m["name"]) == model]
    if not config["models"] or "blend_of" in config["models"][0]:
        raise SystemExit(f"{model!r} is not a searched model of {name!r} in the suite")
    if seed is not None:
        config["tuning"] = config["tuning"] | {"search_seed": seed}
    return config


def validation_only(result: dict, main: str) -> dict:
    """A final result cut to what the search is judged on: validation, per seed and mean."""
    seeds = result.get("per_seed") or [result]  # a single final seed is the result itself
    return {"valid": result["valid"][main], "per_seed": [seed["valid"][main] for seed in seeds]}


def search(suite: dict, name: str, model: str, seed: int, runs: Path, records: Path) -> dict:
    """One search seed's record: kept, or searched now (``clarec tune`` in its own run folder)."""
    config = search_config(suite, name, model, seed)
    path = records / name / f"{model}-{seed}.json"
    record = read_record(path, "config", config)
    if record is not None:
        return record
    out = runs / name / f"{model}-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "clarec.cli", "tune", str(out / "config.yaml"), "--models", model]
    # stdout is the final run's table with its test figures: not shown (progress, on stderr, is)
    subprocess.run([*cmd, "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    main = suite["evaluation"]["main_metric"]
    chosen = json.loads((out / "tune.json").read_text())["models"][model]["best_params"]
    final = json.loads((out / "final" / "results.json").read_text())[model]
    record = {
        "config": config,
        "best_params": chosen,
        "seconds": time.perf_counter() - start,
        **validation_only(final, main),
    }
    write_record(path, record)
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", type=Path)
    ap.add_argument("dataset")
    ap.add_argument("model", help="a cell's label in the suite (e.g. xsimgcl-align)")
    ap.add_argument("result", type=Path)
    ap.add_argument("--search-seeds", type=int, nargs="+", default=[3024, 4024])
    ap.add_argument("--runs", type=Path, default=Path("runs/search-luck"))
    ap.add_argument("--records", type=Path, default=Path("benchmarks/results/search-luck"))
    args = ap.parse_args()
    suite = load_suite(args.suite)
    name, model, main = args.dataset, args.model, suite["evaluation"]["main_metric"]
    if name not in suite["datasets"]:
        raise SystemExit(f"no data set {name!r} in {args.suite}")
    search_config(suite, name, model, None)  # a searched model of the data set
    cell = cell_record(suite, name, model, RECORDS)
    if cell is None:
        raise SystemExit(f"the cell {name} / {model} has no finished record under the current suite")
    rows = [
        (f"{suite.get('seed', 2024)} (the cell)", cell["best_params"], validation_only(cell["result"], main))
    ]
    for seed in args.search_seeds:
        record = search(suite, name, model, seed, args.runs, args.records)
        rows.append((str(seed), record["best_params"], record))
    means = np.array([r["valid"] for _, _, r in rows])
    trials = suite["trials"]
    lines = [
        f"# Search luck: {model} on {name}",
        "",
        f"The cell's search ({trials} TPE trials in the suite's space, then the chosen settings on the"
        " cell's final seeds over split and model) run again with other seeds of the sampler alone"
        f" (`tuning.search_seed`). Validation {main} only (no test figure is read): what the"
        " leaderboard chooses on.",
        "",
        f"| search seed | valid {main} (final seeds) | per seed | chosen settings |",
        "|---|---:|---|---|",
    ]
    for seed, chosen, r in rows:
        settings = ", ".join(
            f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in sorted(chosen.items())
        )
        per_seed = " / ".join(f"{v:.4f}" for v in r["per_seed"])
        lines.append(f"| {seed} | {r['valid']:.4f} | {per_seed} | {settings} |")
    lines += [
        "",
        f"Spread of the searches' figures: {means.max() - means.min():.4f} (highest {means.max():.4f},"
        f" lowest {means.min():.4f}; std {means.std(ddof=1):.4f} over {len(means)} searches).",
        "",
        f"Command: `{command_line()}`  ",
        f"Data root: `$CLAREC_DATA` = `{data_root()}`  ",
        f"Machine: {machine_line()}; the {len(rows) - 1} searches took"
        f" {sum(r['seconds'] for _, _, r in rows[1:]):.0f} s (as they ran, kept in their records).",
    ]
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
