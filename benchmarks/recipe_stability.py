"""Does every shipped recipe hold across split draws? Each config under configs/ run unchanged on
several seeds; the seed draws the split (where the split method is random) and seeds the models.

Usage:
    taskset -c 1 python benchmarks/recipe_stability.py benchmarks/results/recipe-stability.md \\
        [--configs configs/a.yaml ...] [--seeds 2024 2025 2026] [--out runs/recipe-stability]

For each config and seed the top-level ``seed`` (and ``split.seed`` where the config sets one) is
replaced; nothing else changes. A model that an earlier config already runs on the same data and
split with the same parameters is not run again (the table names where its figures are). On a
split without randomness (leave-one-out without new items or noise) a model without a ``seed``
parameter gives the same figures for every seed and is fitted once. A (model, seed) that
``benchmarks/sequential.py`` has already run under the same config (its record in
``benchmarks/results/sequential/``) is read from that record rather than fitted again. Configs whose split cannot be redrawn (``official``: the source's own
split), configs that train no recommender (``pretrain``) and search configs (``tuning``: ``clarec
tune`` chooses their settings) are listed as skipped, with why. ``--no-fit`` fits nothing: the
result file shows what records and finished run folders hold, the rest as not finished.

Criterion: for every model, the lowest test value of the config's main metric over the seeds is at
least 95% of that model's mean over the seeds. Each (config, seed) run folder is kept under
``--out``; a re-run reuses a finished folder whose resolved config is unchanged, so an interrupted
benchmark resumes where it stopped and an edited recipe is run again.
The result file is rewritten after every run, so it always shows what is finished.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import yaml
from _machine import command_line, machine_line
from sequential import RECORDS, draws_from_seed, run_record

from clarec.config import dump_config, load_config
from clarec.data.split import SPLIT_METHODS
from clarec.experiment.runner import run_experiment
from clarec.models.registry import get_model_class

#: split methods whose result does not depend on a seed
DETERMINISTIC_SPLITS = {"leave_one_out", "user_temporal", "global_temporal", "predefined"}
THRESHOLD = 0.95


def skip_reason(raw: dict) -> str | None:
    if raw.get("pretrain") is not None:
        return (
            "encoder-adaptation recipe (`clarec pretrain`): it trains no recommender; what it gives is "
            "measured through the cold-start recipe"
        )
    if raw.get("split", {}).get("method") == "official":
        return "the source's own split (`official`): there is no other draw of it to run"
    if raw.get("tuning") is not None:
        return (
            "search config (`tuning`): `clarec tune` chooses its settings on validation and runs the "
            "winners on several split and model seeds itself"
        )
    return None


def cell_key(raw: dict, model: dict) -> str:
    """What makes two runs of a model the same: data, split (without its seed), name, parameters."""
    split = {k: v for k, v in (raw.get("split") or {}).items() if k != "seed"}
    if not split.get("noise"):
        split.pop("noise", None)
    return json.dumps([raw.get("data"), split, model["name"], model.get("params") or {}], sort_keys=True)


def seeded(raw: dict, seed: int) -> dict:
    out = copy.deepcopy(raw)
    out["seed"] = seed
    if "seed" in (out.get("split") or {}):
        out["split"]["seed"] = seed
    return out


def label(model: dict) -> str:
    return model.get("label") or model["name"]


def split_is_fixed(split: dict) -> bool:
    """Whether a config's split is the same for every seed: a method without randomness that draws
    nothing either (no new items by ``cold_share``, no ``noise``: both are drawn from the seed)."""
    return split.get("method", "random") in DETERMINISTIC_SPLITS and not draws_from_seed(split)


def run_one(raw: dict, config: str, seed: int, models: list[dict], out: Path, fit: bool = True) -> dict:
    """Results of ``models`` under ``seed`` (reusing a finished run folder; without ``fit``, only that)."""
    folder = out / Path(config).stem / f"seed-{seed}"
    cfg = load_config(raw=seeded(raw, seed) | {"models": models})
    done = folder / "results.json"
    if done.is_file() and (folder / "config.yaml").read_text() == dump_config(cfg):
        return json.loads(done.read_text())
    if not fit:
        return {}
    print(f"[{time.strftime('%H:%M:%S')}] {config} seed {seed}: {[label(m) for m in models]}", flush=True)
    shutil.rmtree(folder, ignore_errors=True)  # a run of another config, or none
    return run_experiment(cfg, folder, seeds=1, save_models=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result_md")
    ap.add_argument("--configs", nargs="+", default=sorted(str(p) for p in Path("configs").glob("*.yaml")))
    ap.add_argument("--seeds", nargs="+", type=int, default=[2024, 2025, 2026])
    ap.add_argument("--out", default="runs/recipe-stability")
    ap.add_argument("--records", type=Path, default=RECORDS, help="benchmarks/sequential.py's records")
    ap.add_argument("--no-fit", action="store_true", help="fit nothing; report what is finished")
    args = ap.parse_args()
    command = command_line()
    out = Path(args.out)
    t0 = time.perf_counter()

    seen: dict[str, str] = {}  # cell key -> "config: label" that runs it
    report: list[dict] = []
    for config in args.configs:
        raw = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
        entry = {"config": config, "name": raw.get("name", Path(config).stem), "rows": [], "notes": []}
        report.append(entry)
        reason = skip_reason(raw)
        if reason:
            entry["skipped"] = reason
            continue
        method = (raw.get("split") or {}).get("method", "random")
        if method not in SPLIT_METHODS:
            raise SystemExit(f"{config}: unknown split method {method!r}")
        fixed_split = split_is_fixed(raw.get("split") or {})
        if fixed_split:
            entry["notes"].append(
                f"split `{method}` has no randomness: the seeds vary the models only; models without "
                "a seed were fitted once"
            )
        elif method in DETERMINISTIC_SPLITS:
            entry["notes"].append(
                f"split `{method}` draws its new items (`cold_share`) or noise from the seed: each seed "
                "is another draw, and every model is fitted for every seed"
            )
        main_metric = load_config(config).evaluation.main_metric
        entry["metric"] = main_metric
        todo: dict[int, list[dict]] = {s: [] for s in args.seeds}
        for model in raw["models"]:
            key = cell_key(raw, model)
            if key in seen:
                entry["rows"].append({"model": label(model), "same_as": seen[key]})
                continue
            seen[key] = f"{entry['name']}: {label(model)}"
            once = fixed_split and "seed" not in get_model_class(model["name"]).param_names()
            row = {"model": label(model), "once": once, "values": {}}
            entry["rows"].append(row)
            for s in args.seeds[:1] if once else args.seeds:
                # the same run as benchmarks/sequential.py's (config unchanged, only its seed set)
                # (its split seed follows the top-level seed, as here, unless the config sets one)
                same = "seed" not in (raw.get("split") or {})
                record = run_record(raw, label(model), s, args.records) if same else None
                if record is None:
                    todo[s].append(model)
                    continue
                row["values"][s] = record["result"]["test"][main_metric]
                row.setdefault("fit_seconds", []).append(record["result"]["fit_seconds"])
                row["from_records"] = True
        if any(row.get("from_records") for row in entry["rows"]):
            entry["notes"].append(
                "rows marked † are read from `benchmarks/sequential.py`'s records of this config: the "
                "same runs, not fitted again"
            )
        for s in args.seeds:
            if not todo[s]:
                continue
            results = run_one(raw, config, s, todo[s], out, fit=not args.no_fit)
            for row in entry["rows"]:
                if row["model"] in results and "values" in row:
                    row["values"][s] = results[row["model"]]["test"][main_metric]
                    row.setdefault("fit_seconds", []).append(results[row["model"]]["fit_seconds"])
            write(args, report, command, time.perf_counter() - t0)
    write(args, report, command, time.perf_counter() - t0, final=True)


def verdict(row: dict, seeds: list[int]) -> tuple[str, float, float, float, bool] | None:
    vals = row["values"]
    if row.get("once") and vals:
        vals = dict.fromkeys(seeds, next(iter(vals.values())))
    if len(vals) < len(seeds):
        return None
    v = np.array([vals[s] for s in seeds])
    mean, std, ratio = float(v.mean()), float(v.std(ddof=1)), float(v.min() / v.mean()) if v.mean() else 1.0
    return " / ".join(f"{x:.4f}" for x in v), mean, std, ratio, ratio >= THRESHOLD


def write(args, report: list[dict], command: str, seconds: float, final: bool = False) -> None:
    lines = [
        "# Recipe stability: every shipped config on several split draws",
        "",
        f"Seeds {', '.join(map(str, args.seeds))}: each seed draws the split (random and cold-start splits) "
        "and seeds the models; nothing else in the config changes. Test figures of each config's main "
        f"metric; criterion: every model's lowest value at least {THRESHOLD:.0%} of its own mean over the "
        "seeds. No setting was chosen on these figures: the configs are run as shipped.",
        "",
    ]
    failures, missing = [], []
    for entry in report:
        lines.append(f"## {entry['name']} (`{entry['config']}`)")
        lines.append("")
        if "skipped" in entry:
            lines += [f"Skipped: {entry['skipped']}.", ""]
            continue
        lines += [f"- {n}" for n in entry["notes"]]
        if entry["notes"]:
            lines.append("")
        metric = entry.get("metric", "")
        lines += [
            f"| model | test {metric} per seed | mean ± std | lowest / mean | holds | fit s (mean) |",
            "|---|---|---:|---:|:---:|---:|",
        ]
        for row in entry["rows"]:
            if "same_as" in row:
                lines.append(f"| {row['model']} | same cell as *{row['same_as']}* | | | | |")
                continue
            v = verdict(row, args.seeds)
            if v is None:
                missing.append(f"{entry['name']}: {row['model']}")
                done = ", ".join(f"{s}: {v:.4f}" for s, v in sorted(row["values"].items()))
                lines.append(f"| {row['model']} | not finished{f' ({done})' if done else ''} | | | | |")
                continue
            per, mean, std, ratio, ok = v
            if not ok:
                failures.append(f"{entry['name']}: {row['model']}")
            fit = np.mean(row.get("fit_seconds", [0.0]))
            note = " (fitted once: deterministic)" if row.get("once") else ""
            mark = " †" if row.get("from_records") else ""
            lines.append(
                f"| {row['model']}{mark} | {per}{note} | {mean:.4f} ± {std:.4f} | {ratio:.3f} | "
                f"{'yes' if ok else '**no**'} | {fit:.1f} |"
            )
        lines.append("")
    status = "complete" if final and not missing else "partial (still running or interrupted)"
    lines += [
        "## Summary",
        "",
        f"Status: {status}. Below the criterion: {', '.join(failures) if failures else 'none'}."
        + (f" Not finished: {', '.join(missing)}." if missing else ""),
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_line()}; {seconds / 60:.0f} min" + (" in all." if final else " so far."),
        "",
    ]
    Path(args.result_md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.result_md).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
