"""Next-item benchmark: each sequential model of a config on several seeds, both conventions.

Every (model, seed) is one ``clarec run CONFIG --models MODEL --set seed=SEED`` into
``RUNS/<model>-<seed>/`` (separate processes, so runs can go in parallel, one thread each; a run
already finished is not redone, and a stopped one continues from its last epoch, ``--resume``);
``report`` reads whatever runs are complete and writes the result file: test metrics mean ± std
over seeds under each convention the config evaluates (history items masked, kept), validation
NDCG@20 (what early stopping and any choice used), each seed's figures, the evaluator's segments
(new items, the long tail, users by activity) and paired t-tests over seeds of each model against
the config's reference model (``--reference``), and of any other pairs named (``--pair A:B``).
It chooses nothing: every setting is the config's, and a setting to be chosen is chosen before, on
validation figures only, with ``benchmarks/validation_sweep.py`` (which computes no test figure);
test figures are computed once per (model, seed), for the config as written.

A finished run is also kept as a small record, ``RECORDS/<config name>/<model>-<seed>.json`` (by
default ``benchmarks/results/sequential/``, committed with the project): its results, its epochs and
the resolved config of the model. Runs take up to an hour each on one core, so the benchmark spans
working sessions whose scratch run folders do not survive: ``run`` skips a (model, seed) whose record
matches the config (an edited model's record is stale and runs again) and ``report`` reads records.

Usage:
    CLAREC_DATA=../shared/datasets python benchmarks/sequential.py run configs/beauty-seq.yaml \\
        --runs runs/beauty-seq --models sasrec duorec --seeds 2024 2025 2026
    python benchmarks/sequential.py report configs/beauty-seq.yaml --result benchmarks/results/beauty-seq.md \\
        --pair text-seq-transfer:text-seq
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from _machine import command_line, machine_line
from _records import read_record, stamped, start_folder, write_record

from clarec.config import load_config
from clarec.evaluate.stats import paired_t_test

SHOWN = ("ndcg@10", "hit@10", "ndcg@20", "hit@20")
RECORDS = Path(__file__).parent / "results" / "sequential"


def run(args) -> None:
    load_config(args.config)  # checked before anything runs
    raw = read_raw(args.config)
    for model in args.models:
        for seed in args.seeds:
            if run_record(raw, model, seed, args.records) is not None:
                continue
            out = args.runs / f"{model}-{seed}"
            key = model_config(raw, model, seed)
            if not ((out / "results.json").is_file() and stamped(out, key)):
                start_folder(out, key)
                cmd = [sys.executable, "-m", "clarec.cli", "run", args.config, "--models", model]
                cmd += ["--set", f"seed={seed}", "--out", str(out), "--resume"]  # a stopped fit continues
                subprocess.run(cmd, check=True)
            keep_record(raw, model, seed, out, args.records)


def model_config(raw: dict, model: str, seed: int) -> dict:
    """What a run's figures depend on, as the config file ``raw`` writes it: data, split, evaluation,
    the model's entry and the seed."""
    entry = next(m for m in raw["models"] if (m.get("label") or m["name"]) == model)
    return {k: raw.get(k) for k in ("data", "split", "evaluation")} | {"model": entry, "seed": seed}


def keep_record(raw: dict, model: str, seed: int, out: Path, records: Path) -> None:
    result = json.loads((out / "results.json").read_text())[model]
    hist = out / "train" / model / f"seed-{seed}" / "history.json"
    epochs = None
    if hist.is_file():
        h = json.loads(hist.read_text())
        epochs = [len(h["epochs"]), h["best_epoch"]]
    record = {"config": model_config(raw, model, seed), "epochs": epochs, "result": result}
    write_record(records / raw["name"] / f"{model}-{seed}.json", record)


def run_record(raw: dict, model: str, seed: int, records: Path) -> dict | None:
    """The record of (model, seed), or None when there is none or it was made under another config."""
    return read_record(
        records / raw["name"] / f"{model}-{seed}.json", "config", model_config(raw, model, seed)
    )


def read_raw(config: str) -> dict:
    return yaml.safe_load(Path(config).read_text(encoding="utf-8"))


def collect(raw: dict, keys: list[str], records: Path) -> dict[str, dict[int, dict]]:
    """``{model: {seed: record}}`` of the current records of the models ``keys``."""
    found: dict[str, dict[int, dict]] = {}
    for path in sorted((records / raw["name"]).glob("*-*.json")):
        model, _, seed = path.stem.rpartition("-")
        if seed.isdigit() and model in keys:
            record = run_record(raw, model, int(seed), records)
            if record is not None:
                found.setdefault(model, {})[int(seed)] = record
    return found


def test_metrics(result: dict, convention: str, main: str) -> dict[str, float]:
    return result["test"] if convention == main else result["conventions"][convention]["test"]


def paired_lines(
    found: dict[str, dict[int, dict]], a: str, b: str, conventions: list[str], main: str
) -> list[str]:
    """Paired t-tests of ``a`` against ``b`` over their common seeds, one line per convention; none
    while fewer than two seeds of both are in."""
    common = sorted(set(found.get(a, {})) & set(found.get(b, {})))
    if len(common) < 2:
        return []
    lines = []
    for conv in conventions:
        t = paired_t_test(
            [test_metrics(found[a][s], conv, main)["ndcg@20"] for s in common],
            [test_metrics(found[b][s], conv, main)["ndcg@20"] for s in common],
        )
        lines.append(
            f"- {a} − {b}, history items {conv}: {t.mean_diff:+.4f} NDCG@20 "
            f"(p = {t.p_value:.2g}, 95% t interval [{t.ci_low:.4f}, {t.ci_high:.4f}], seeds {common})"
        )
    return lines


def segment_table(keys: list[str], found: dict[str, dict[int, dict]], main: str) -> list[str]:
    """Test NDCG@20 / HR@20 on the evaluator's segments (``docs/metrics.md``), history items under the
    main convention, mean ± std over seeds: new items (``cold_only``, ``cold_items``) first when the
    split has them, then the long tail and users by activity."""
    names = sorted({g for seeds in found.values() for r in seeds.values() for g in r.get("segments", {})})
    order = ["cold_only", "cold_items", "items_head", "items_mid", "items_tail"]
    names = [g for g in order if g in names] + [g for g in names if g not in order]
    if not names:
        return []
    lines = [
        "",
        f"## Test by segment, history items {main}: NDCG@20 / HR@20",
        "",
        "Segments as in `docs/metrics.md`: `cold_only` ranks the new items alone (the items without "
        "training interactions), `cold_items` the new items' cases over the whole catalogue; "
        "`items_head` / `mid` / `tail` restrict relevance to a third of the training interactions by "
        "item popularity; `activity_q1`–`q4` are users by their number of training items, least "
        "active first.",
        "",
        "| model | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]

    def cell(values: list[float]) -> str:
        return (
            f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else f"{values[0]:.4f}"
        )

    for model in keys:
        runs = [found[model][s] for s in sorted(found.get(model, {}))]
        if not runs:
            continue
        cells = []
        for g in names:
            have = [r["segments"][g] for r in runs if g in r.get("segments", {})]
            cells.append(
                f"{cell([h['ndcg@20'] for h in have])} / {cell([h['hit@20'] for h in have])}" if have else ""
            )
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def draws_from_seed(split: dict) -> bool:
    """Whether a split's parameters draw something from the seed even on a method without
    randomness: new items (``cold_share``) or noise."""
    return bool(split.get("cold_share") or split.get("noise"))


def report(args) -> None:
    cfg = load_config(args.config)
    keys = [m.key for m in cfg.models]
    records = collect(read_raw(args.config), keys, args.records)
    found = {m: {seed: r["result"] for seed, r in seeds.items()} for m, seeds in records.items()}
    conventions = list(cfg.evaluation.history_items)
    main = conventions[0]
    lines = [f"# Next-item prediction: {cfg.name}", ""]
    lines.append(
        f"Config `{args.config}` (data, split, every setting); test = the last item of each user, the "
        "validation item read as input by every model that scores a history exactly; full ranking over "
        "all items. Each model was run once per seed ("
        + (
            "the seed draws the split's new items and seeds the model; a model and the reference of the "
            "same seed share the split"
            if draws_from_seed(cfg.split.params())
            else "model seed; the leave-one-out split has no randomness"
        )
        + "); its epoch was chosen by early stopping on validation NDCG@20. Its other settings "
        "are the config's; where the config's comments say one was chosen, it was chosen on validation "
        "figures only, by the sweep they name, before these runs."
    )
    for conv in conventions:
        lines += ["", f"## Test, history items {conv}", "", "| model | seeds | " + " | ".join(SHOWN) + " |"]
        lines.append("|---|---|" + "---:|" * len(SHOWN))
        for model in keys:
            seeds = sorted(found.get(model, {}))
            if not seeds:
                continue
            cells = []
            for m in SHOWN:
                v = [test_metrics(found[model][s], conv, main)[m] for s in seeds]
                cells.append(f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}" if len(v) > 1 else f"{v[0]:.4f}")
            lines.append(f"| {model} | {', '.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Per seed",
        "",
        "| model | seed | valid ndcg@20 | "
        + " | ".join(f"test ndcg@20 ({c})" for c in conventions)
        + " | epochs (best) | fit s |",
    ]
    lines.append("|---|---:|---:|" + "---:|" * len(conventions) + "---:|---:|")
    for model in keys:
        for seed, r in sorted(found.get(model, {}).items()):
            counted = records[model][seed]["epochs"]
            epochs = f"{counted[0]} ({counted[1]})" if counted else ""
            tests = " | ".join(f"{test_metrics(r, c, main)['ndcg@20']:.4f}" for c in conventions)
            # a fit resumed after a stop: its epochs' seconds, without the earlier process's set-up
            resumed = ", ".join(map(str, r.get("resumed_after", [])))
            fit = f"{r['fit_seconds']:.0f}" + (f" (resumed after epoch {resumed})" if resumed else "")
            lines.append(f"| {model} | {seed} | {r['valid']['ndcg@20']:.4f} | {tests} | {epochs} | {fit} |")
    lines += segment_table(keys, found, main)
    pairs = [(model, args.reference) for model in keys if model != args.reference]
    pairs += args.pair
    tests = [line for a, b in pairs for line in paired_lines(found, a, b, conventions, main)]
    if tests:
        lines += ["", "Paired t-tests over seeds (`clarec.evaluate.stats.paired_t_test`):", "", *tests]
    missing = [m for m in keys if m not in found]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    lines += [
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_line()}; one torch thread per run.",
        "",
    ]
    Path(args.result).write_text("\n".join(lines))
    print("\n".join(lines))


def model_pair(text: str) -> tuple[str, str]:
    """``--pair A:B`` as ``(A, B)``."""
    a, colon, b = text.partition(":")
    if not (a and colon and b):
        raise argparse.ArgumentTypeError(f"takes A:B (two model labels), got {text!r}")
    return a, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("config")
    r.add_argument("--runs", type=Path, required=True)
    r.add_argument("--models", nargs="+", required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=[2024, 2025, 2026])
    r.add_argument("--records", type=Path, default=RECORDS, help="where finished runs are kept")
    p = sub.add_parser("report")
    p.add_argument("config")
    p.add_argument("--result", required=True)
    p.add_argument("--records", type=Path, default=RECORDS, help="where finished runs are kept")
    p.add_argument("--reference", default="sasrec")
    p.add_argument(
        "--pair",
        nargs="*",
        type=model_pair,
        default=[],
        metavar="A:B",
        help="also test model A against model B",
    )
    args = ap.parse_args()
    run(args) if args.what == "run" else report(args)


if __name__ == "__main__":
    main()
