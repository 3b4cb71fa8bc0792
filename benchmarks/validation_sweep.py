"""Choose one model's settings in a shipped config on validation only, over several seeds.

Usage:
    python benchmarks/validation_sweep.py CONFIG MODEL RESULT_MD --grid lr=0.001,0.005 --grid patience=10,30 \\
        [--seeds 2024 2025 2026] [--max-fit-seconds S] [--segments cold_items cold_only] [--records DIR]
    python benchmarks/validation_sweep.py CONFIG MODEL RESULT_MD --point "{ssl_similarity: dot, ssl_temperature: 1.0}" \\
        --point "{ssl_similarity: cos, ssl_temperature: 0.2}"

Every setting — each point of the grid, or each ``--point`` as given (not crossed; ``{}`` is the
config's own) — is the model's parameters in CONFIG with the setting's values put in, trained
once per seed; each seed draws the split (as ``benchmarks/recipe_stability.py`` does) and seeds the
model. Only validation figures are computed and printed — the config's main metric, its mean over
the seeds and its lowest seed relative to that mean — never a test figure — with the mean fit
seconds. The point with the best mean (among those whose mean fit time is at most ``--max-fit-seconds``,
for a recipe on a time budget such as the demo's) is reported as the choice; the config is then
edited by hand, with this file as its record. Fit times are only comparable on an otherwise idle
machine. ``--segments`` adds the main metric on those validation segments (e.g. the cold items of a
cold-start split) as columns, for the reader; the choice stays on the whole validation set.

Each finished (setting, seed) is kept as a record under ``--records`` (default
``benchmarks/results/sweeps/<RESULT_MD's name>/``, committed): a sweep of runs that take an hour
each spans working sessions, and a re-run picks up the records made with the same data, split,
evaluation and model parameters (the config's with the setting put in — so writing the chosen setting
into the config keeps every record valid) and trains only what is missing. Until every (setting,
seed) is finished the result file lists what is there and chooses nothing. Name in every point the
values it runs with, the config's current ones included: ``{}`` (or a grid value left to the config)
means whatever the config says when the command runs, so once the config takes the winner the same
command would sweep another set of settings.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import time
from pathlib import Path

import numpy as np
import yaml
from _machine import command_line, data_root, machine_line
from _records import read_record, write_record
from recipe_stability import seeded

from clarec.config import load_config
from clarec.evaluate import Evaluator
from clarec.experiment.runner import prepare_data
from clarec.models import create
from clarec.models.registry import get_model_class


class _Loader(yaml.SafeLoader):
    """YAML as the configs are read, except that a number with an exponent and no dot (``2e-05``),
    which YAML 1.1 leaves a string, is a float: a setting on the command line names the number it runs."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def parse_grid(items: list[str]) -> dict[str, list]:
    grid = {}
    for item in items:
        key, _, values = item.partition("=")
        grid[key.strip()] = [read_yaml(v) for v in values.split(",")]
    return grid


def record_key(raw: dict, entry: dict, point: dict, seed: int) -> dict:
    """What one (setting, seed) figure depends on: the config's data, split and evaluation, and the
    model's parameters with the setting put in — so that writing the chosen setting into the config
    afterwards leaves the records valid (a re-run of the sweep trains nothing)."""
    model = {k: v for k, v in entry.items() if k != "params"} | {
        "params": (entry.get("params") or {}) | point
    }
    return {k: raw.get(k) for k in ("data", "split", "evaluation")} | {"model": model, "seed": seed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("model", help="the model's label (or name) in the config")
    ap.add_argument("result_md")
    ap.add_argument("--grid", action="append", default=[], help="param=v1,v2,... (repeatable)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[2024, 2025, 2026])
    ap.add_argument("--max-fit-seconds", type=float, default=None, help="time budget of the choice")
    ap.add_argument("--segments", nargs="*", default=[], help="validation segments shown beside the choice")
    ap.add_argument("--point", action="append", default=[], help="one setting as YAML (repeatable)")
    ap.add_argument("--records", type=Path, default=None, help="where finished (setting, seed) runs are kept")
    args = ap.parse_args()
    if bool(args.grid) == bool(args.point):
        raise SystemExit("give the settings either as --grid or as --point, not both")
    t0 = time.perf_counter()
    raw = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    entry = next(m for m in raw["models"] if (m.get("label") or m["name"]) == args.model)
    if args.point:
        points = [read_yaml(p) or {} for p in args.point]
    else:
        grid = parse_grid(args.grid)
        points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    ev = load_config(args.config).evaluation
    metric = ev.main_metric
    k = int(metric.split("@")[1])
    records = args.records or Path(__file__).parent / "results" / "sweeps" / Path(args.result_md).stem
    done: dict[tuple[int, int], dict] = {}
    for seed in args.seeds:
        todo = []
        for i, point in enumerate(points):
            key = record_key(raw, entry, point, seed)
            path = records / f"{hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]}.json"
            record = read_record(path, "key", key)
            if record is not None:
                done[i, seed] = record
            else:
                todo.append((i, point, path, key))
        if not todo:
            continue
        cfg = load_config(raw=seeded(raw, seed))
        split = prepare_data(cfg).split
        # the validation figure of the config's main convention (history items masked or kept)
        evaluator = Evaluator(split, ks=[k], history_items=ev.history_items[0], test_input=ev.test_input)
        for i, point, path, key in todo:
            # for the models that take them; validation follows the config's main convention
            run = {"seed": seed, "progress": False, "eval_history": ev.history_items[0]}
            allowed = get_model_class(entry["name"]).param_names()
            params = dict(entry.get("params") or {}) | point | {k: v for k, v in run.items() if k in allowed}
            start = time.perf_counter()
            model = create(entry["name"], params).fit(split.train, valid=split.valid)
            fit = time.perf_counter() - start
            result = evaluator.evaluate(model, part="valid")
            segments = {g: result.segments.get(g, {}).get(metric, float("nan")) for g in args.segments}
            done[i, seed] = {"key": key, "valid": result.metrics[metric], "segments": segments, "fit_s": fit}
            write_record(path, done[i, seed])
            print(
                f"seed {seed} {point}: valid {metric} {done[i, seed]['valid']:.4f}, fit {fit:.1f} s",
                flush=True,
            )
    finished = [i for i in range(len(points)) if all((i, s) in done for s in args.seeds)]
    scores = {i: [done[i, s]["valid"] for s in args.seeds] for i in finished}
    fit_s = {i: [done[i, s]["fit_s"] for s in args.seeds] for i in finished}
    segs = {
        (i, g): [done[i, s]["segments"].get(g, float("nan")) for s in args.seeds]
        for i in finished
        for g in args.segments
    }
    rows = sorted(((float(np.mean(v)), i) for i, v in scores.items()), reverse=True)  # best mean first
    budget = args.max_fit_seconds
    eligible = [i for _, i in rows if budget is None or np.mean(fit_s[i]) <= budget]
    if not eligible and len(finished) == len(points):
        raise SystemExit(f"no setting fits in {budget} s on average")
    lines = [
        f"# Validation sweep: {args.model} in `{args.config}`",
        "",
        f"Validation {metric} only (no test figure is computed); seeds {', '.join(map(str, args.seeds))} "
        "each draw the split and seed the model. Base parameters: the config's "
        f"`{entry.get('params') or {}}`.",
        "",
        f"| setting | valid {metric} per seed | mean | lowest / mean | "
        + "".join(f"{g} (mean) | " for g in args.segments)
        + "fit s (mean) |",
        "|---|---|---:|---:|" + "---:|" * len(args.segments) + "---:|",
    ]
    for mean, i in rows:
        v = scores[i]
        lines.append(
            f"| {points[i]} | {' / '.join(f'{x:.4f}' for x in v)} | {mean:.4f} | {min(v) / mean:.3f} | "
            + "".join(f"{np.mean(segs[i, g]):.4f} | " for g in args.segments)
            + f"{np.mean(fit_s[i]):.1f} |"
        )
    within = "" if budget is None else f" among the settings fitted in at most {budget:g} s on average"
    if len(finished) == len(points):
        lines += ["", f"Chosen (best mean{within}): `{points[eligible[0]]}`."]
    else:
        missing = [points[i] for i in range(len(points)) if i not in finished]
        lines += ["", f"Not finished yet (nothing is chosen until every setting has every seed): {missing}."]
    lines += [
        "",
        f"Command: `{command_line()}`  ",
        f"Data root: `$CLAREC_DATA` = `{data_root()}`  ",
        f"Machine: {machine_line()}; {time.perf_counter() - t0:.0f} s.",
        "",
    ]
    Path(args.result_md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.result_md).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
