"""The cross-data-set leaderboard: every model of ``benchmarks/suite.yaml`` on every data set, tuned on
validation with the same budget, then run on seeds; ``benchmarks/results/leaderboard.md`` is written
by ``report``, never by hand.

``run`` makes, per data set, the experiment config (its data and split, the suite's models with their
search spaces, ``tuning: {trials, seeds, split_seeds: true}``) in ``RUNS/<data set>/config.yaml`` and
calls ``clarec tune CONFIG --models MODEL --out RUNS/<data set>/<model>`` for each model not skipped
there (a data set whose entry says ``not_run`` only when named with ``--datasets``; one process per
model: run two at a time on two cores, one thread each; a model whose final
results exist is not redone, and a stopped search resumes from its study — both only when the run
folder was made under the cell's current config (``_records.start_folder``); a folder of another
config is emptied first). ``report`` reads whatever
finished: per data set, each model's validation figure (what the search chose on) and test figures
(mean ± std over the seeds, computed once, for the chosen settings), and a paired t-test over seeds
of each contrastive model against the best non-contrastive baseline. Which model is "best" (the
reference baseline, the order of the rows, the data set's best model) is decided on validation;
test figures are only read. A data set's ``search`` in the suite sets dimensions of the space of its
models trained in mini-batches (in place of a model's own range of the same setting), its ``params``
fixed settings of those models (in place of a model's own values); the suite's
``goals`` are read off the finished cells into a *Goals* table (:func:`goal_lines`). A suite entry with ``blend_of`` is a *blend cell* (:func:`blend_entry`):
the ``blend`` of other cells' models at the settings their searches chose, run once those cells are
finished (their final fits taken from their run folders where these are here, not trained again:
:func:`reuse_member_fits`), its weights chosen on validation within each fit; it is marked as a blend in the report
and counts for a goal only where the goal names it. It also writes ``RUNS/<data set>/all``, one run folder of all the
finished models of a data set, for ``clarec report RUNS/<data set>/all`` (the HTML page).

A finished cell is also kept as a small record, ``RECORDS/<data set>/<model>.json`` (by default
``benchmarks/results/leaderboard/``, committed with the project): the model's final results (per-seed
figures included), its chosen settings and the config it was tuned under. The leaderboard takes hours
per data set on two cores, longer than a working session and its scratch run folders, so ``run``
skips a cell whose record matches the current suite (a record of an edited model, data set or budget
is stale: the cell runs again), and ``report`` reads the records, not the run folders. A cell's
search and final seeds, longer than a session, are kept piece by piece too: while ``clarec tune`` runs,
its finished trials (``OUT/trials.json``) and final seeds (``OUT/final/train/<model>/seed-N/result.json``)
are copied every minute to ``RECORDS/<data set>/<model>.progress.json``, and a run folder without a
study of its own starts from them — on this machine or another — so only the trial or seed in
progress is lost when a session ends.

Usage:
    CLAREC_DATA=../shared/datasets python benchmarks/leaderboard.py run benchmarks/suite.yaml \\
        --runs runs/leaderboard [--datasets ml-100k beauty] [--models ease bpr] [--records DIR]
    python benchmarks/leaderboard.py report benchmarks/suite.yaml --result benchmarks/results/leaderboard.md \\
        [--runs runs/leaderboard] [--records DIR]
    clarec report runs/leaderboard/ml-100k/all
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from _machine import write_result
from _records import read_record, stamped, start_folder, write_record

from clarec.config import load_config
from clarec.experiment.report import paired_against
from clarec.experiment.runner import SEED_RESULT
from clarec.experiment.tune import TRIALS, at_edges, with_settings
from clarec.models.registry import get_model_class
from clarec.models.torch_base import TorchRecommender

SHOWN = ("recall@20", "ndcg@20", "coverage@20", "novelty@20")
RECORDS = Path(__file__).parent / "results" / "leaderboard"
POLL_SECONDS = 60


def load_suite(path: Path) -> dict:
    suite = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in ("trials", "seeds", "models", "datasets", "baselines"):
        if key not in suite:
            raise SystemExit(f"{path}: the suite needs {key!r}")
    return suite


def dataset_models(suite: dict, spec: dict) -> list[dict]:
    return suite["sequential_models"] if spec.get("sequential") else suite["models"]


def dataset_config(suite: dict, name: str) -> dict:
    """The experiment config of one data set (every model of its family, skipped ones left out)."""
    spec = suite["datasets"][name]
    skip = spec.get("skip", {})
    evaluation = dict(suite["evaluation"])
    if spec.get("sequential"):
        evaluation |= {"history_items": ["masked", "kept"], "test_input": "train+valid"}
    models = [m for m in dataset_models(suite, spec) if (m.get("label") or m["name"]) not in skip]
    return {
        "name": name,
        "seed": suite.get("seed", 2024),
        "data": spec["data"],
        "split": spec.get("split", {}),
        "models": [_for_data_set(m, spec) for m in models],
        "tuning": {"trials": suite["trials"], "seeds": suite["seeds"], "split_seeds": True, "pruning": True},
        "evaluation": evaluation,
    }


def resolved_config(suite: dict, name: str, records: Path) -> dict:
    """:func:`dataset_config` as ``clarec tune`` reads it: each blend cell made a ``blend`` of its
    members' chosen settings (:func:`blend_entry`), or left out while a member cell is unfinished."""
    config = dataset_config(suite, name)
    models = [blend_entry(suite, name, m, records) if "blend_of" in m else m for m in config["models"]]
    return config | {"models": [m for m in models if m is not None]}


def blend_entry(suite: dict, name: str, entry: dict, records: Path) -> dict | None:
    """A blend cell as a ``blend`` model whose members are its member cells' models at the settings
    their searches chose (:func:`blend_members`); None while one of those cells is unfinished. The
    blend searches nothing itself: its weights are chosen on validation within each fit."""
    cells = blend_members(suite, name, entry, records)
    if cells is None:
        return None
    members = []
    for record in cells.values():
        model = record["config"]["model"]
        members.append(
            {"name": model["name"], "params": with_settings(model.get("params", {}), record["best_params"])}
        )
    fixed = {k: v for k, v in entry.items() if k not in ("blend_of", "search")}
    return fixed | {"name": "blend", "params": {**entry.get("params", {}), "members": members}}


def blend_members(suite: dict, name: str, entry: dict, records: Path) -> dict[str, dict] | None:
    """``{label: record}`` of a blend cell's members (``blend_of``: one entry per member, a cell's label
    or a list of labels of which the one with the best validation figure is taken, skipped ones left
    out), or None while one of those cells is unfinished."""
    main = suite["evaluation"]["main_metric"]
    skip = suite["datasets"][name].get("skip", {})
    members = {}
    for group in entry["blend_of"]:
        labels = [m for m in ([group] if isinstance(group, str) else group) if m not in skip]
        cells = {m: cell_record(suite, name, m, records) for m in labels}
        if not cells or None in cells.values():
            return None
        best = max(cells, key=lambda m: cells[m]["result"]["valid"][main])
        members[best] = cells[best]
    return members


def _labels(config: dict, only_blends: bool = False) -> set[str]:
    """The cells of a config's models (``only_blends``: its blend cells)."""
    return {m.get("label") or m["name"] for m in config["models"] if not only_blends or "blend_of" in m}


def _for_data_set(entry: dict, spec: dict) -> dict:
    """``entry`` with a data set's settings for a model trained in mini-batches (a torch model): its
    ``search`` dimensions added to the model's space, or in place of its own range of the same setting
    (the data set's range is the one made for that data set), and its ``params`` in place of the
    model's own values of the same settings."""
    search, params = spec.get("search", {}), spec.get("params", {})
    if (not search and not params) or "blend_of" in entry:
        return entry
    if not issubclass(get_model_class(entry["name"]), TorchRecommender):
        return entry
    out = dict(entry)
    if search:
        out["search"] = entry.get("search", {}) | search
    if params:
        out["params"] = entry.get("params", {}) | params
    return out


def run(args) -> None:
    suite = load_suite(args.suite)
    for name in args.datasets or list(suite["datasets"]):
        if name not in suite["datasets"]:
            raise SystemExit(f"no data set {name!r} in {args.suite}; it has {list(suite['datasets'])}")
        reason = suite["datasets"][name].get("not_run")
        if reason and not args.datasets:  # out of the published scope; runs when named
            print(f"{name}: not run ({reason}); name it with --datasets to run it", flush=True)
            continue
        folder = args.runs / name
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.yaml"
        resolved = resolved_config(suite, name, args.records)
        config.write_text(yaml.safe_dump(resolved, sort_keys=False))
        cfg = load_config(config)  # checked before anything runs
        for model in _labels(dataset_config(suite, name)) - _labels(resolved):
            if not args.models or model in args.models:
                print(f"{name}: {model} waits for its members' cells", flush=True)
        for model in cfg.models:
            if args.models and model.key not in args.models:
                continue
            out = folder / model.key
            if cell_record(suite, name, model.key, args.records) is not None:
                continue
            if keep_record(suite, name, model.key, out, args.records):
                continue
            start_folder(out, cell_config(suite, name, model.key, args.records))
            seed_folder(suite, name, model.key, out, args.records)
            reuse_member_fits(suite, name, model.key, out, args.runs, args.records)
            cmd = [
                sys.executable,
                "-m",
                "clarec.cli",
                "tune",
                str(config),
                "--models",
                model.key,
                "--out",
                str(out),
            ]
            print(" ".join(cmd), flush=True)
            proc = subprocess.Popen(cmd)
            while True:  # each finished trial is kept as it lands
                try:
                    code = proc.wait(timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    keep_progress(suite, name, model.key, out, args.records)
            keep_progress(suite, name, model.key, out, args.records)
            if code:
                raise SystemExit(f"{' '.join(cmd)} failed with exit status {code}")
            if keep_record(suite, name, model.key, out, args.records):
                progress_record(args.records, name, model.key).unlink(missing_ok=True)


def cell_config(suite: dict, name: str, model: str, records: Path) -> dict:
    """What a cell's figures depend on: the data set's data, split, tuning and evaluation and the
    model's entry (parameters and search space; a blend cell's, its members' chosen settings: a
    re-tuned member makes its blend's record stale)."""
    config = dataset_config(suite, name)
    entry = next(m for m in config.pop("models") if (m.get("label") or m["name"]) == model)
    if "blend_of" in entry:
        entry = blend_entry(suite, name, entry, records) or entry
    return config | {"model": entry}


def keep_record(suite: dict, name: str, model: str, out: Path, records: Path) -> bool:
    """Write the record of a cell whose run folder ``out`` holds finished final results made under
    the cell's current config."""
    config = cell_config(suite, name, model, records)
    final = out / "final" / "results.json"
    if not final.is_file() or not stamped(out, config):
        return False
    result = json.loads(final.read_text())[model]
    tune = out / "tune.json"
    chosen = json.loads(tune.read_text())["models"].get(model, {}) if tune.is_file() else {}
    record = {
        "model": model,
        "dataset": name,
        "config": config,
        "best_params": chosen.get("best_params", {}),
        "result": result,
    }
    path = records / name / f"{model}.json"
    write_record(path, record)
    print(f"record: {path}", flush=True)
    return True


def progress_record(records: Path, name: str, model: str) -> Path:
    return records / name / f"{model}.progress.json"


def kept_progress(suite: dict, name: str, model: str, records: Path) -> dict:
    """What an unfinished cell has kept under its current config: ``trials`` (the search's finished
    trials) and ``final`` (``{"config": the final run's config, "seeds": {seed folder: result}}``)."""
    record = read_record(
        progress_record(records, name, model), "config", cell_config(suite, name, model, records)
    )
    return (
        {"trials": record["trials"], "final": record.get("final", {})}
        if record
        else {"trials": [], "final": {}}
    )


def seed_folder(suite: dict, name: str, model: str, out: Path, records: Path) -> None:
    """Give a run folder without a search of its own what the cell has kept — the finished trials
    (``clarec tune`` starts its study from them) and the final run's finished seeds (read back, not
    fitted, when the search chooses the same settings) — so a cell left on another machine goes on."""
    kept = kept_progress(suite, name, model, records)
    if not kept["trials"] or (out / "tune.db").exists():
        return
    (out / TRIALS).write_text(json.dumps({model: kept["trials"]}))
    final = kept["final"]
    for seed, result in final.get("seeds", {}).items():
        folder = out / "final" / "train" / model / seed
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SEED_RESULT).write_text(json.dumps(result))
    if final:
        (out / "final" / "config.yaml").write_text(final["config"])
    print(
        f"{out}: {len(kept['trials'])} trials and {len(final.get('seeds', {}))} final seeds kept in "
        f"{progress_record(records, name, model)}",
        flush=True,
    )


def reuse_member_fits(suite: dict, name: str, model: str, out: Path, runs: Path, records: Path) -> None:
    """Give a blend cell's final run the fits its members' own cells made: each member cell's final
    seed folder (``RUNS/<data set>/<member>/final/train/<member>/seed-N``: the trainer's ``last.pt``,
    ``best.pt``, history and log) copied to the folder the blend's member of that seed trains in
    (``OUT/final/train/<blend>/seed-N/<index>-<model name>``). The member has the same settings, data
    and seed there, so the trainer resumes it as a finished fit (it checks the fit's signature first)
    instead of training it again — hours for a language-model member on Beauty. Models that do not
    train in epochs, and seeds whose member folder exists already, are left alone."""
    entry = next((m for m in dataset_config(suite, name)["models"] if m.get("label") == model), None)
    if entry is None or "blend_of" not in entry:
        return
    members = blend_members(suite, name, entry, records) or {}
    for index, (label, record) in enumerate(members.items()):
        source = runs / name / label
        if not stamped(source, cell_config(suite, name, label, records)):
            continue  # no run folder here, or one of another config
        member = f"{index}-{record['config']['model']['name']}"
        for last in sorted((source / "final" / "train" / label).glob("seed-*/last.pt")):
            target = out / "final" / "train" / model / last.parent.name / member
            if not target.exists():
                shutil.copytree(last.parent, target, ignore=shutil.ignore_patterns(SEED_RESULT))
                print(f"{target}: the fit of {source / 'final'} (finished: not trained again)", flush=True)


def keep_progress(suite: dict, name: str, model: str, out: Path, records: Path) -> None:
    """Keep what a cell's run folder has finished — its search's trials (``OUT/trials.json``) and
    the final run's seeds (``OUT/final/train/<model>/seed-N/result.json``) — as a record."""
    path = out / TRIALS
    if not path.is_file() or not stamped(out, cell_config(suite, name, model, records)):
        return
    progress = {"trials": json.loads(path.read_text()).get(model, []), "final": {}}
    config = out / "final" / "config.yaml"
    if config.is_file():
        seeds = {}
        for result in sorted((out / "final" / "train" / model).glob(f"seed-*/{SEED_RESULT}")):
            try:
                seeds[result.parent.name] = json.loads(result.read_text())
            except ValueError:
                continue  # being written
        progress["final"] = {"config": config.read_text(), "seeds": seeds}
    if progress["trials"] and progress != kept_progress(suite, name, model, records):
        record = {
            "model": model,
            "dataset": name,
            "config": cell_config(suite, name, model, records),
            **progress,
        }
        write_record(progress_record(records, name, model), record)


def cell_record(suite: dict, name: str, model: str, records: Path) -> dict | None:
    """The record of a cell, or None when there is none or it was made under another config."""
    return read_record(records / name / f"{model}.json", "config", cell_config(suite, name, model, records))


def finished(suite: dict, name: str, records: Path) -> dict[str, dict]:
    """``{model: record}`` of the finished cells of one data set, in the suite's order."""
    found = {}
    for entry in dataset_config(suite, name)["models"]:
        model = entry.get("label") or entry["name"]
        record = cell_record(suite, name, model, records)
        if record is not None:
            found[model] = record
    return found


def merge_run(suite: dict, name: str, folder: Path, results: dict[str, dict], records: Path) -> Path:
    """``folder/all``: one run folder holding every finished model of the data set (results, the
    data set's config, the data report, links to each model's training curves), so that
    ``clarec report folder/all`` draws the whole data set on one page."""
    merged = folder / "all"
    (merged / "train").mkdir(parents=True, exist_ok=True)
    (merged / "results.json").write_text(json.dumps(results, indent=2))
    config = resolved_config(suite, name, records)
    (merged / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for model in results:  # curves and the data report where this machine still has the run folders
        final = folder / model / "final"
        if not (merged / "data.json").is_file() and (final / "data.json").is_file():
            (merged / "data.json").write_text((final / "data.json").read_text())
        link = merged / "train" / model
        if (final / "train" / model).is_dir() and not link.exists():
            link.symlink_to(Path("..", "..", model, "final", "train", model))
    return merged


def cell(result: dict, part: str, metric: str, segment: str | None = None) -> str:
    """``mean ± std`` of ``metric`` on ``part`` (``segment``: on that test segment), or ''."""
    if segment is None:
        value = result[part].get(metric)
        std = result.get("std", {}).get(part, {}).get(metric)
    else:
        value = result.get("segments", {}).get(segment, {}).get(metric)
        std = result.get("segments_std", {}).get(segment, {}).get(metric)
    if value is None:
        return ""
    return f"{value:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def report_dataset(suite: dict, name: str, runs: Path, records: Path, main: str) -> tuple[list[str], str]:
    spec = suite["datasets"][name]
    cells = finished(suite, name, records)
    results = {m: r["result"] for m, r in cells.items()}
    config = dataset_config(suite, name)
    wanted = [m.get("label") or m["name"] for m in config["models"]]
    lines = [f"## {name}", ""]
    lines.append(
        f"Data: `{json.dumps(spec['data'])}`; split: `{json.dumps(spec.get('split', {}))}`"
        + ("; next-item prediction, history items masked" if spec.get("sequential") else "")
        + "".join(
            f"; every model trained in mini-batches searches `{k}` over {v} (in place of its own range, if any)"
            for k, v in spec.get("search", {}).items()
        )
        + "".join(
            f"; every model trained in mini-batches runs with `{k}: {v}`"
            for k, v in spec.get("params", {}).items()
        )
        + "."
    )
    skipped = [f"- skipped: {model} — {reason}." for model, reason in spec.get("skip", {}).items()]
    skipped = ["", *skipped] if skipped else []
    if not results:
        if spec.get("not_run"):
            return lines + ["", f"Not run: {spec['not_run']}."], f"| {name} | not run (see below) | | |"
        return lines + ["", "Not run yet.", *skipped], f"| {name} | not run yet | | |"
    merge_run(suite, name, runs / name, results, records)
    blends = _labels(config, only_blends=True)
    # the reference baseline and the order of the rows are chosen on validation, never on test
    baselines = [m for m in results if m in suite["baselines"]]
    best_base = max(baselines, key=lambda m: results[m]["valid"][main]) if baselines else None
    tests = paired_against(results, main, best_base) if best_base else {}
    lines += [
        "",
        f"| model | valid {main} | "
        + " | ".join(f"test {m}" for m in SHOWN)
        + f" | test {main}, long tail | vs {best_base or 'baseline'} | chosen settings |",
        "|---|---:|" + "---:|" * (len(SHOWN) + 1) + "---|---|",
    ]
    order = sorted(results, key=lambda m: -results[m]["valid"][main])
    wins = []
    for m in order:
        r = results[m]
        versus = ""
        if m not in suite["baselines"] and m in tests:
            t = tests[m]
            versus = f"{t.mean_diff:+.4f} (p = {t.p_value:.2g})"
            if t.mean_diff > 0 and t.p_value < 0.05:
                wins.append(m)
        chosen = cells[m]["best_params"]
        settings = ", ".join(
            f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in chosen.items()
        )
        if m in blends:
            entry = next(e for e in config["models"] if e.get("label") == m)
            settings = "of " + " and ".join(blend_members(suite, name, entry, records) or ["?"])
            weights = [seed["chosen"]["weights"] for seed in r.get("per_seed", []) if "chosen" in seed]
            if weights:
                shown = ", ".join("/".join(f"{w:g}" for w in ws) for ws in weights)
                settings += f"; weights by seed (chosen on validation): {shown}"
        lines.append(
            f"| {m}{_kind(m, suite, blends)} | {cell(r, 'valid', main)} | "
            + " | ".join(cell(r, "test", x) for x in SHOWN)
            + f" | {cell(r, 'test', main, 'items_tail')} | {versus} | {settings} |"
        )
    edges = [
        f"{m} {k} ({where})"
        for m in order
        if m not in blends
        for k, where in at_edges(
            cells[m]["config"]["model"].get("search", {}), cells[m]["best_params"]
        ).items()
    ]
    if edges:
        lines += [
            "",
            f"Chosen at an edge of the search space (the space may have cut the search short): {'; '.join(edges)}.",
        ]
    missing = [m for m in wanted if m not in results]
    if missing:
        lines += ["", f"Not run yet: {', '.join(_progress(suite, name, m, records) for m in missing)}."]
    lines += skipped
    best = order[0]
    summary = (
        f"| {name} | {best} {results[best]['test'][main]:.4f} | {best_base or ''} | "
        f"{', '.join(wins) or 'none'} |"
    )
    return lines, summary


def _kind(model: str, suite: dict, blends: set[str]) -> str:
    return "" if model in suite["baselines"] else " (blend)" if model in blends else " (contrastive)"


def _progress(suite: dict, name: str, model: str, records: Path) -> str:
    if model in _labels(dataset_config(suite, name), only_blends=True):
        return f"{model} (a blend: after its members' cells)"
    kept = kept_progress(suite, name, model, records)
    if not kept["trials"]:
        return model
    seeds = len(kept["final"].get("seeds", {}))
    return f"{model} ({len(kept['trials'])} of {suite['trials']} trials" + (
        f", {seeds} of {suite['seeds']} final seeds kept)" if seeds else " kept)"
    )


def goal_lines(suite: dict, main: str, records: Path) -> list[str]:
    """The suite's ``goals`` read off the finished cells: per goal and data set, the model with the best
    validation figure among the goal's ``models`` (by default every contrastive one) against the
    baseline ``against``, paired over seeds on test. ``claim: beat`` is met above it with p < 0.05,
    ``claim: reach`` with a test mean at least level."""
    goals = suite.get("goals", [])
    if not goals:
        return []
    lines = [
        "",
        "## Goals",
        "",
        "Each goal's model is chosen on validation among the models it names; its test figure is then "
        "compared once (paired t-test over seeds). *beat*: above the baseline with p < 0.05; *reach*: "
        "a test mean at least the baseline's.",
        "",
        f"| goal | data set | model (best on validation among the goal's) | test {main} | difference (p) | met |",
        "|---|---|---|---:|---:|---|",
    ]
    for goal in goals:
        claim, against = goal["claim"], goal["against"]
        if claim not in ("beat", "reach"):
            raise SystemExit(f"a goal's claim is 'beat' or 'reach', not {claim!r}")
        for name in goal["datasets"]:
            results = {m: r["result"] for m, r in finished(suite, name, records).items()}
            # by default every contrastive model; a blend only when named (it holds a baseline)
            others = suite["baselines"] + sorted(_labels(dataset_config(suite, name), only_blends=True))
            named = goal.get("models") or [m for m in results if m not in others]
            pool = [m for m in named if m in results]
            head = f"| {claim} {against} | {name} |"
            if against not in results or not pool:
                lines.append(f"{head} not run yet | | | |")
                continue
            best = max(pool, key=lambda m: results[m]["valid"][main])
            t = paired_against({best: results[best], against: results[against]}, main, against).get(best)
            if t is None:
                lines.append(f"{head} {best} | {results[best]['test'][main]:.4f} | fewer than two seeds | |")
                continue
            met = t.mean_diff > 0 and t.p_value < 0.05 if claim == "beat" else t.mean_diff >= 0
            lines.append(
                f"{head} {best} | {results[best]['test'][main]:.4f} | {t.mean_diff:+.4f} "
                f"(p = {t.p_value:.2g}) | {'yes' if met else 'no'} |"
            )
    return lines


def report(args) -> None:
    suite = load_suite(args.suite)
    main = suite["evaluation"]["main_metric"]
    sections, summary = [], []
    for name in suite["datasets"]:
        lines, row = report_dataset(suite, name, args.runs, args.records, main)
        sections += ["", *lines]
        summary.append(row)
    out = [
        "# Leaderboard",
        "",
        f"Every model tuned on validation {main} with the same budget ({suite['trials']} TPE trials, "
        "pruning from the validation curve; `clarec tune`), then its chosen settings run on "
        f"{suite['seeds']} seeds, each drawing the split too (leave-one-out splits have no randomness: "
        "there the seeds are model seeds). Test figures are computed once, for the chosen settings: "
        "mean ± std over the seeds, full ranking, history items masked. Rows are in order of validation "
        f"{main}; contrastive models are tested against the non-contrastive baseline with the best "
        "validation figure (paired t-test over seeds of the test figure). A *blend* row combines other "
        "cells' models at the settings their searches chose, its weights chosen on the same validation "
        "data its validation figure is read on (a figure that flatters it a little); it is tested like the "
        "contrastive models but counts for a goal only where the goal names it. *Long tail*: the same lists scored "
        "against each test user's held-out items among the least popular ones (the items making up the "
        "last third of the training interactions, items unseen in training included), over the users "
        "who have such an item. A cell's figures carry the luck of its search's path: the same search with "
        "other sampler seeds lands about 0.01 apart on validation (`benchmarks/search_luck.py`, "
        "`benchmarks/results/search-luck-*.md`); the ± is over seeds of the chosen settings only.",
        "",
        f"| data set | best on validation (its test {main}) | best baseline on validation | "
        "contrastive models (and blends) above it on test with p < 0.05 |",
        "|---|---|---|---|",
        *summary,
        *goal_lines(suite, main, args.records),
        *sections,
    ]
    write_result(args.result, out, 0, data=False, note="one torch thread per run")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("suite", type=Path)
    r.add_argument("--runs", type=Path, required=True)
    r.add_argument("--datasets", nargs="*", default=[])
    r.add_argument("--models", nargs="*", default=[])
    r.add_argument("--records", type=Path, default=RECORDS, help="where finished cells are kept")
    p = sub.add_parser("report")
    p.add_argument("suite", type=Path)
    p.add_argument(
        "--runs", type=Path, default=Path("runs/leaderboard"), help="where RUNS/<data set>/all is written"
    )
    p.add_argument("--result", type=Path, required=True)
    p.add_argument("--records", type=Path, default=RECORDS, help="where finished cells are kept")
    args = ap.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
