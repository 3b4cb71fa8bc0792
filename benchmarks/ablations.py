"""Does each contrastive lever earn its keep? One lever at a time against a model's default recipe.

A spec (``benchmarks/ablations-*.yaml``) names an experiment config (data, split, evaluation), the
seeds, and studies: a model of that config (its parameters there are the **default** recipe) and
its levers, each a few variants that change some parameters and nothing else. ``run`` trains every
variant on every seed — each seed draws the split and seeds the model, so the spread covers both —
as one ``clarec run --models LABEL --seeds N --split-seeds`` per variant into ``RUNS/<label>/``
(separate processes: run two at a time on two cores, one thread each). Each finished variant is kept
as a small committed record, ``benchmarks/results/ablations/<spec name>/<label>.json`` (its figures
per seed, made under the variant's model entry, the config's data, split and evaluation, and the
seeds): ``run`` skips a variant whose record is current, copies the record of another spec that ran
the very same variant (a shared default), and re-runs one whose recipe changed, and
``report`` reads only the records, so an ablation spans working sessions and machines. ``report``
writes, per lever and variant, validation and test NDCG@20 (mean ± std over seeds) and the paired
difference on test against the lever's reference (``default``, unless the lever names another
``reference``: one of its variants, or ``lever=variant`` of another lever — a lever that only acts
with another one on), with the paired t-test's p-value and its t interval over the seeds.

A spec may also name test ``segments`` to report as columns (as ``report --segments`` does), merge
``data`` into the config's data section (e.g. ``{profiles: FOLDER}``), and set ``split_seeds: false``
(the seeds seed the model on the config's own split draw: for inputs made for one split, such as
written user profiles).

An ablation chooses nothing: every variant's test figure is shown, whatever it is, and no setting
of the default recipe is changed because of it.

Usage:
    CLAREC_DATA=../shared/datasets python benchmarks/ablations.py run benchmarks/ablations-ml-100k.yaml \\
        --runs runs/ablations-ml-100k [--only LABEL ...]
    python benchmarks/ablations.py report benchmarks/ablations-ml-100k.yaml [more specs] \\
        --result benchmarks/results/ablations.md [--html runs/ablations.html]
"""

from __future__ import annotations

import argparse
import html
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from _machine import write_result
from _records import read_record, stamped, start_folder, write_record
from recipe_stability import DETERMINISTIC_SPLITS

from clarec.config import load_config
from clarec.evaluate.stats import paired_t_test

DEFAULT = "default"
RECORDS = Path(__file__).parent / "results" / "ablations"
TITLE = "Ablations: does each contrastive lever earn its keep?"


def load_spec(path: Path) -> dict:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in ("name", "config", "seeds", "studies"):
        if key not in spec:
            raise SystemExit(f"{path}: the spec needs {key!r}")
    return spec


def variants(spec: dict) -> list[dict]:
    """Every variant of every study: ``label``, ``model`` (the config's label), ``lever``,
    ``variant``, ``changed`` (parameters that differ from the default), ``reference`` (a label)."""
    out = []
    for study in spec["studies"]:
        model = study["model"]
        out.append(
            {"label": f"{model}.{DEFAULT}", "model": model, "lever": "", "variant": DEFAULT, "changed": {}}
        )
        for lever, options in study["levers"].items():
            options = dict(options)
            reference = options.pop("reference", DEFAULT)
            for variant, changed in options.items():
                out.append(
                    {
                        "label": f"{model}.{lever}={variant}",
                        "model": model,
                        "lever": lever,
                        "variant": variant,
                        "changed": dict(changed),
                        "reference": f"{model}.{reference if reference == DEFAULT or '=' in reference else f'{lever}={reference}'}",
                    }
                )
    return out


def variant_config(spec: dict) -> dict:
    """The spec's experiment config with one model entry per variant, labelled by the variant."""
    raw = yaml.safe_load(Path(spec["config"]).read_text(encoding="utf-8"))
    entries = {(m.get("label") or m["name"]): m for m in raw["models"]}
    models = []
    for v in variants(spec):
        base = entries.get(v["model"])
        if base is None:
            raise SystemExit(f"{spec['config']} has no model {v['model']!r}; it has {sorted(entries)}")
        models.append(
            {
                "name": base["name"],
                "label": v["label"],
                "params": dict(base.get("params") or {}) | v["changed"],
            }
        )
    raw["models"] = models
    own = raw.get("seed", 2024)  # ExperimentConfig's default
    if not spec.get("split_seeds", True) and spec["seeds"][0] != own:
        # the run's first seed draws the split: "the config's own draw" needs the config's seed first
        raise SystemExit(
            f"{spec['name']}: with split_seeds: false the split is the config's own draw (seed {own}); "
            f"start the seeds at {own}, not {spec['seeds'][0]}"
        )
    raw["seed"] = spec["seeds"][0]
    raw["data"] = dict(raw["data"]) | spec.get("data", {})
    return raw


def record_key(spec: dict, raw: dict, label: str) -> dict:
    """What a variant's figures depend on: its model entry, the data, split and evaluation, the seeds."""
    entry = next(m for m in raw["models"] if m["label"] == label)
    key = {"model": entry, "seeds": spec["seeds"], "split_seeds": spec.get("split_seeds", True)}
    return key | {k: raw.get(k) for k in ("data", "split", "evaluation")}


def record_path(spec: dict, label: str, records: Path) -> Path:
    return records / spec["name"] / f"{label}.json"


def run(args) -> None:
    spec = load_spec(args.spec)
    seeds = spec["seeds"]
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise SystemExit("seeds must be consecutive (clarec run --seeds N counts up from the first)")
    raw = variant_config(spec)
    args.runs.mkdir(parents=True, exist_ok=True)
    config = args.runs / "ablation-config.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_config(config)  # every variant's parameters are checked before anything runs
    for v in variants(spec):
        label = v["label"]
        key = record_key(spec, raw, label)
        if args.only and label not in args.only:
            continue
        if read_record(record_path(spec, label, args.records), "key", key) is not None:
            continue
        same = (read_record(path, "key", key) for path in sorted(args.records.glob(f"*/{label}.json")))
        record = next((r for r in same if r is not None), None)
        if record is not None:  # another spec ran the same variant (e.g. a shared default)
            write_record(record_path(spec, label, args.records), record)
            continue
        out = args.runs / label
        if not ((out / "results.json").is_file() and stamped(out, key)):
            start_folder(out, key)
            cmd = [sys.executable, "-m", "clarec.cli", "run", str(config), "--models", label]
            cmd += ["--seeds", str(len(seeds)), "--out", str(out)]
            cmd += ["--split-seeds"] if spec.get("split_seeds", True) else []
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        result = json.loads((out / "results.json").read_text())[label]
        figures = [
            {
                "seed": r["seed"],
                "valid": r.get("valid", {}),
                "test": r["test"],
                "segments": r.get("segments", {}),
            }
            for r in result.get("per_seed", [result])  # a run of one seed is that seed's result
        ]
        write_record(record_path(spec, label, args.records), {"key": key, "per_seed": figures})


def current(spec: dict, records: Path) -> dict[str, dict]:
    """``{label: record}`` of the spec's variants whose record is current (read once per report)."""
    raw = variant_config(spec)
    found = {}
    for v in variants(spec):
        record = read_record(record_path(spec, v["label"], records), "key", record_key(spec, raw, v["label"]))
        if record is not None:
            found[v["label"]] = record
    return found


def per_seed(found: dict[str, dict], label: str, part: str, metric: str) -> dict[int, float]:
    """``{seed: figure}`` of a variant (empty without a current record); ``part``: ``valid``,
    ``test`` or a test segment's name (e.g. ``cold_items``)."""
    rows = found[label]["per_seed"] if label in found else []
    if part in ("valid", "test"):
        return {r["seed"]: r[part][metric] for r in rows}
    return {r["seed"]: r["segments"][part][metric] for r in rows if part in r.get("segments", {})}


def fmt(values: list[float]) -> str:
    if not values:
        return ""
    return f"{np.mean(values):.4f}" + (f" ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else "")


def effects(
    spec: dict, found: dict[str, dict], metric: str, part: str = "test"
) -> list[tuple[str, float, float, float, float]]:
    """``(label, mean difference, CI low, CI high, p)`` of every finished variant against its reference
    on ``part`` (``test`` or a test segment)."""
    out = []
    for v in variants(spec):
        if v["variant"] == DEFAULT:
            continue
        test = per_seed(found, v["label"], part, metric)
        ref = per_seed(found, v["reference"], part, metric)
        common = sorted(set(ref) & set(test))
        if len(common) >= 2:
            t = paired_t_test([test[s] for s in common], [ref[s] for s in common])
            out.append((v["label"], t.mean_diff, t.ci_low, t.ci_high, t.p_value))
    return out


def segment_cell(found: dict[str, dict], label: str, name: str, metric: str, tested: dict) -> str:
    """A segment's mean ± std, with the paired difference against the reference and its p-value."""
    cell = fmt(list(per_seed(found, label, name, metric).values()))
    if label in tested:
        d, _, _, p = tested[label]
        cell += f" (Δ {d:+.4f}, p = {p:.2g})"
    return cell


def write_html(specs: list[dict], records: Path, path: Path, title: str) -> None:
    """One page: per spec, each lever's effect on test with its t interval (a forest plot)."""
    from clarec.experiment.html_report import STYLE, _figure

    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    for spec in specs:
        metric = load_config(spec["config"]).evaluation.main_metric
        rows = effects(spec, current(spec, records), metric)
        parts.append(f"<h2>{html.escape(spec['name'])}</h2>")
        if not rows:
            parts.append("<p>No finished variant yet.</p>")
            continue

        def draw(ax, rows=rows, metric=metric):
            y = np.arange(len(rows))[::-1]
            for yi, (_, d, lo, hi, p) in zip(y, rows, strict=True):
                ax.plot([lo, hi], [yi, yi], color="tab:blue")
                ax.plot([d], [yi], "o", color="tab:red" if p < 0.05 else "tab:blue")
            ax.axvline(0, color="grey", linewidth=1)
            ax.set_yticks(y, [r[0] for r in rows], fontsize="small")
            ax.set_xlabel(f"test {metric}: variant − reference (red: p < 0.05)")

        parts.append(_figure(draw, width=8, height=0.4 * len(rows) + 1.5))
    parts.append("</body></html>")
    path.write_text("".join(parts), encoding="utf-8")


def report_spec(spec: dict, records: Path, metric: str, segments: list[str] = ()) -> list[str]:
    found = current(spec, records)
    cfg = load_config(spec["config"])
    seeds = ", ".join(map(str, spec["seeds"]))
    if cfg.split.method in DETERMINISTIC_SPLITS:
        drawn = f"which has no randomness; the seeds ({seeds}) seed the model only"
    elif spec.get("split_seeds", True):
        drawn = f"drawn anew for each seed ({seeds}; each seed also seeds the model)"
    else:
        drawn = f"the config's own draw; the seeds ({seeds}) seed the model only"
    data = cfg.data if not spec.get("data") else f"{cfg.data}, with {spec['data']}"
    lines = [
        f"## {spec['name']}: `{spec['config']}`",
        "",
        f"Data: {data}; split: {cfg.split.method} {cfg.split.params()}, {drawn}. Test {metric}, full ranking.",
        "",
        f"| model | lever | variant | changed | valid {metric} | test {metric} | Δ test vs reference | p | 95% CI | seeds |"
        + "".join(f" test {metric} ({name}) |" for name in segments),
        "|---|---|---|---|---:|---:|---:|---:|---|---:|" + "---:|" * len(segments),
    ]
    missing = []
    tested = {label: (d, lo, hi, p) for label, d, lo, hi, p in effects(spec, found, metric)}
    by_segment = {
        name: {label: (d, lo, hi, p) for label, d, lo, hi, p in effects(spec, found, metric, name)}
        for name in segments
    }
    for v in variants(spec):
        test = per_seed(found, v["label"], "test", metric)
        if not test:
            missing.append(v["label"])
            continue
        valid = per_seed(found, v["label"], "valid", metric)
        cells = ["", "", ""]
        if v["label"] in tested:
            d, lo, hi, p = tested[v["label"]]
            cells = [f"{d:+.4f} ({v['reference'].split('.', 1)[1]})", f"{p:.2g}", f"[{lo:+.4f}, {hi:+.4f}]"]
        changed = ", ".join(f"{k}: {json.dumps(x)}" for k, x in v["changed"].items())
        lines.append(
            f"| {v['model']} | {v['lever'] or '—'} | {v['variant']} | {changed} | {fmt(list(valid.values()))} | "
            f"{fmt(list(test.values()))} | {' | '.join(cells)} | {len(test)} |"
            + "".join(
                f" {segment_cell(found, v['label'], name, metric, by_segment[name])} |" for name in segments
            )
        )
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    return lines


def report(args) -> None:
    lines = [
        f"# {args.title}",
        "",
        "Each lever is changed alone against the model's default recipe (its parameters in the named "
        "config, chosen before these runs); everything else is equal. Every variant's test figure is "
        "shown and nothing was chosen from them. Δ: mean paired difference over seeds (split and model "
        "seed, where the split is drawn), paired t-test p-value and the 95% t interval of the "
        "mean difference (segment columns: Δ and p the same way); with three seeds, a p-value under 0.05 "
        "needs a consistent effect and a large one can still miss it.",
    ]
    specs = [load_spec(path) for path in args.spec]
    for spec in specs:
        metric = load_config(spec["config"]).evaluation.main_metric
        segments = [*spec.get("segments", []), *args.segments]
        lines += ["", *report_spec(spec, args.records, metric, segments)]
    if args.html:
        write_html(specs, args.records, args.html, args.title)
    write_result(args.result, lines, 0, data=False, note="one torch thread per run")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("spec", type=Path)
    r.add_argument("--runs", type=Path, required=True)
    r.add_argument("--only", nargs="*", default=[], help="run only these variant labels")
    r.add_argument("--records", type=Path, default=RECORDS, help="where finished variants are kept")
    p = sub.add_parser("report")
    p.add_argument("spec", type=Path, nargs="+")
    p.add_argument("--records", type=Path, default=RECORDS, help="where finished variants are kept")
    p.add_argument("--result", type=Path, required=True)
    p.add_argument("--title", default=TITLE, help="the result file's heading")
    p.add_argument(
        "--segments", nargs="*", default=[], help="test segments to add as columns (e.g. cold_items)"
    )
    p.add_argument("--html", type=Path, default=None, help="also write the page with the effects drawn")
    args = ap.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
