"""clarec's sasrec against RecBole 1.2.1's SASRec (loss_type CE) on one clarec leave-one-out split.

Runs in the project venv; RecBole runs as ``benchmarks/peers/.venv-recbole/bin/python recbole_run.py
--model SASRec`` (see setup_recbole.sh) on the split folder the config makes. Both sides: hidden size
64, 2 layers, 2 heads, inner size 256, max length 50, dropout 0.5, Adam 1e-3, batch 256, early
stopping after 10 epochs without a better validation NDCG@20, the same torch thread count.

1. Speed (``--rounds`` rounds of ``--speed-epochs`` epochs each, no validation): seconds per training
   epoch, one epoch being one pass over every training target. clarec: the Trainer's timing of
   each entry named by ``--clarec-models`` (``sasrec``: windows of every sequence, loss at every
   position; ``sasrec-prefixes``: one example of every prefix, as RecBole); RecBole:
   ``Trainer._train_epoch`` (one training example of every prefix). Each round runs both sides, in
   alternating order.
2. Accuracy: RecBole trained in full per seed, its lists (history items kept, deep enough to also
   be scored masked) scored by ``clarec evaluate`` under both conventions; clarec's figures are read
   from the records ``benchmarks/sequential.py`` keeps of its runs of the same config, one row per
   entry named by ``--clarec-models`` (default ``sasrec`` and ``sasrec-prefixes``, the latter trained
   on one example per target as RecBole trains; ``--clarec-records``; a record counts only when made
   under this config's data, split, evaluation and the entry's settings, so its leave-one-out split is
   this one). A RecBole training takes hours on one core: a stopped
   one continues from its last finished epoch when the command is run again (``recbole_run.py
   --resume``), and a finished seed (``OUT/recbole-<seed>/recbole.json``) is not trained again.
   Each finished seed's scored figures are kept as a small record to commit,
   ``benchmarks/results/peers-recbole-sasrec/<config name>/recbole-<seed>.json`` (its key: the
   config's data, split and evaluation as written, RecBole's settings, the seed): a seed with a
   current record is neither trained nor scored again, so it outlives ``OUT``. The speed phase's
   figures are kept the same way (``speed.json`` there), so that a run of the accuracy phase alone
   writes them too on a machine without the speed run's ``OUT``; ``--records`` moves both.

Writes ``OUT/compare.json`` and, with ``--result``, the markdown result file. Seeds can train in
separate processes (one ``--seeds`` value each, no ``--result``: a result of one seed would replace
the published one), then one run with all the seeds reads their records back and writes the result.

Usage:
    CLAREC_DATA=../shared/datasets .venv/bin/python benchmarks/peers/recbole_sasrec.py \\
        --config configs/beauty-seq.yaml --out runs/peers-recbole-sasrec \\
        --result benchmarks/results/peers-recbole-sasrec-beauty.md --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.stats as sps
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/_machine.py

from _machine import command_line, machine_line  # noqa: E402
from _records import read_record, write_record  # noqa: E402
from sequential import RECORDS, read_raw, run_record  # noqa: E402

from clarec.config import load_config  # noqa: E402
from clarec.data.split import load_predefined_split  # noqa: E402
from clarec.evaluate.external import evaluate_recommendation_file  # noqa: E402
from clarec.experiment.runner import prepare_data  # noqa: E402
from clarec.models.registry import create  # noqa: E402

RECBOLE_PY = HERE / ".venv-recbole" / "bin" / "python"
RECBOLE_RUN = HERE / "recbole_run.py"
PEER_RECORDS = HERE.parent / "results" / "peers-recbole-sasrec"  # one record per finished seed
KS = (10, 20)
CONVENTIONS = ("masked", "kept")
SHOWN = [f"{m}@{k}" for k in KS for m in ("ndcg", "hit")]


#: recbole_run.py's settings for SASRec (beside --epochs, --seed, --threads); part of a seed's record key
RECBOLE_SETTINGS = {"model": "SASRec", "train-batch-size": 256, "learning-rate": 0.001, "stopping-step": 10}


def recbole(split: Path, out: Path, seed: int, threads: int, epochs: int, timing: bool = False) -> dict:
    cmd = [str(RECBOLE_PY), str(RECBOLE_RUN), "--split", str(split), "--out", str(out)]
    cmd += [a for k, v in RECBOLE_SETTINGS.items() for a in (f"--{k}", str(v))]
    cmd += ["--epochs", str(epochs), "--seed", str(seed), "--threads", str(threads), "--k", "20"]
    if timing:
        cmd.append("--timing-only")
    else:  # a full training takes hours: a stopped one continues from its last epoch, a finished one stands
        if (out / "recbole.json").is_file() and recs_file(out) is not None:
            return json.loads((out / "recbole.json").read_text())
        cmd.append("--resume")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "recbole.json").read_text())


def recs_file(out: Path) -> Path | None:
    """A finished RecBole run's lists: ``recs.tsv``, or ``recs.tsv.gz`` as a GPU run returns them
    (device_recbole_sasrec.sh)."""
    return next((p for p in (out / "recs.tsv", out / "recs.tsv.gz") if p.is_file()), None)


def recbole_key(raw: dict, seed: int, epochs: int) -> dict:
    """What a RecBole seed's figures depend on: the config's data, split and evaluation as written,
    RecBole's settings (``RECBOLE_SETTINGS``, the epoch cap) and the seed."""
    settings = RECBOLE_SETTINGS | {"epochs": epochs}
    return {k: raw.get(k) for k in ("data", "split", "evaluation")} | {"recbole": settings, "seed": seed}


def speed_record(raw: dict, models: list[str], threads: int, records: Path) -> tuple[Path, dict]:
    """Where the speed figures are kept (``records/<config name>/speed.json``, committed, so that an
    accuracy-only run on a machine without the ``OUT`` of the speed run still writes them) and what
    they depend on: the config's data and split, the clarec entries timed (as written), RecBole's
    settings and the thread count."""
    entries = [m for m in raw["models"] if (m.get("label") or m["name"]) in models]
    key = {k: raw.get(k) for k in ("data", "split")}
    return records / raw["name"] / "speed.json", key | {
        "clarec": entries,
        "recbole": RECBOLE_SETTINGS,
        "threads": threads,
    }


def speed_phase(
    raw: dict, models: list[str], threads: int, records: Path, measure: Callable[[], dict] | None
) -> dict | None:
    """The speed figures: measured (``measure``: ``{"clarec": {model: seconds}, "recbole": seconds}``)
    and kept as a record with this command and machine, or without ``measure`` those of the record
    made under the same key (``None`` if none was)."""
    path, key = speed_record(raw, models, threads, records)
    if measure is None:
        record = read_record(path, "config", key)
        return None if record is None else record["speed"]
    speed = measure() | {"command": command_line(), "machine": machine_line()}
    write_record(path, {"config": key, "speed": speed})
    return speed


def recbole_seed(
    raw: dict, split_dir: Path, run: Path, seed: int, threads: int, epochs: int, records: Path = PEER_RECORDS
) -> dict:
    """One RecBole seed's test figures under both conventions, its epochs and training seconds: from
    its committed record (``records/<config name>/recbole-<seed>.json``) when one was made under the
    same key, else trained in ``run`` (or resumed there, or read from a finished run there), scored
    and recorded, so that a seed that took hours survives its run folder."""
    path = records / raw["name"] / f"recbole-{seed}.json"
    key = recbole_key(raw, seed, epochs)
    record = read_record(path, "config", key)
    if record is None:
        summary = recbole(split_dir, run, seed, threads, epochs)
        scores = {
            c: evaluate_recommendation_file(split_dir, recs_file(run), ks=KS, history_items=c)
            for c in CONVENTIONS
        }
        # fit_seconds: all of the training, resumed or not
        record = {"config": key, "result": scores, "epochs": summary["epochs_run"]}
        record |= {"seconds": summary["fit_seconds"], "machine": machine_line(), "command": command_line()}
        write_record(path, record)
    return record["result"] | {"epochs": record["epochs"], "seconds": record["seconds"]}


def clarec_epochs(split, cfg, key: str, epochs: int, threads: int) -> list[float]:
    spec = next(m for m in cfg.models if m.key == key)
    params = spec.params | {"epochs": epochs, "num_threads": threads}
    model = create(spec.name, params | {"progress": False, "seed": cfg.seed})
    model.fit(split.train)  # no validation data: the epochs are training only
    return list(model.history_.seconds)


def fmt(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def versus_recbole(acc: dict, conv: str, metric: str = "ndcg@20") -> list[str]:
    """One line per clarec entry with 2+ seeds, beside RecBole with 2+ seeds: the difference of the
    means, RecBole's seeds' range and standard deviation (is clarec's mean inside the spread of
    RecBole's seeds?) and Welch's t-test over the two sets of seeds (unpaired: the same seed number
    seeds two unrelated programs)."""
    theirs = [acc["recbole"][s][conv][metric] for s in sorted(acc["recbole"])]
    if len(theirs) < 2:
        return []
    lines = []
    for model, runs in acc["clarec"].items():
        ours = [runs[s][conv][metric] for s in sorted(runs)]
        if len(ours) < 2:
            continue
        diff = float(np.mean(ours) - np.mean(theirs))
        inside = min(theirs) <= np.mean(ours) <= max(theirs)
        p = sps.ttest_ind(ours, theirs, equal_var=False).pvalue
        lines.append(
            f"- clarec {model} − RecBole, {metric}: {diff:+.4f} (RecBole's seeds {min(theirs):.4f}–"
            f"{max(theirs):.4f}, std {np.std(theirs, ddof=1):.4f}: clarec's mean "
            f"{'inside' if inside else 'outside'} that range; Welch's t-test p = {p:.2g})"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/beauty-seq.yaml")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--clarec-records", type=Path, default=RECORDS, help="benchmarks/sequential.py's records")
    ap.add_argument(
        "--clarec-models",
        nargs="+",
        default=["sasrec", "sasrec-prefixes"],
        help="the config's entries compared",
    )
    ap.add_argument(
        "--records", type=Path, default=PEER_RECORDS, help="where the per-seed and speed records are kept"
    )
    ap.add_argument(
        "--result",
        type=Path,
        help="the markdown result to write (left out: only OUT/compare.json and the records, as for one "
        "seed of several run in its own process)",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[2024, 2025, 2026])
    ap.add_argument("--phases", nargs="+", default=["speed", "accuracy"], choices=["speed", "accuracy"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--speed-epochs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_config(args.config)
    if missing := [m for m in args.clarec_models if m not in {spec.key for spec in cfg.models}]:
        ap.error(f"--clarec-models: no entry {missing} in {args.config}")
    split_dir = args.out / "split"
    if not (split_dir / "train.tsv").is_file():
        prepare_data(cfg).split.save(split_dir)
    split = load_predefined_split(split_dir)
    report = {"machine": machine_line(), "threads": args.threads}
    if args.out.joinpath("compare.json").is_file():
        report = json.loads(args.out.joinpath("compare.json").read_text()) | report

    raw = read_raw(args.config)

    def measure() -> dict:
        clarec_s, recbole_s = {m: [] for m in args.clarec_models}, []
        for r in range(args.rounds):
            order = ("clarec", "recbole") if r % 2 == 0 else ("recbole", "clarec")
            for side in order:
                if side == "clarec":
                    for m in args.clarec_models:
                        clarec_s[m] += clarec_epochs(split, cfg, m, args.speed_epochs, args.threads)
                else:
                    out = args.out / f"speed-recbole-{r}"
                    recbole_s += recbole(
                        split_dir, out, cfg.seed, args.threads, args.speed_epochs, timing=True
                    )["seconds_per_epoch"]
        return {"clarec": clarec_s, "recbole": recbole_s}

    measuring = "speed" in args.phases
    if measuring or "speed" not in report:  # else OUT's compare.json has them
        speed = speed_phase(
            raw, args.clarec_models, args.threads, args.records, measure if measuring else None
        )
        if speed is not None:
            report["speed"] = speed

    if "accuracy" in args.phases:
        acc = {"recbole": {}, "clarec": {}, "command": command_line()}
        for seed in args.seeds:
            for model in args.clarec_models:
                record = run_record(raw, model, seed, args.clarec_records)
                if record is not None:
                    res = record["result"]
                    acc["clarec"].setdefault(model, {})[seed] = {
                        "masked": res["test"],
                        "kept": res["conventions"]["kept"]["test"],
                    }
            run = args.out / f"recbole-{seed}"
            acc["recbole"][seed] = recbole_seed(
                raw, split_dir, run, seed, args.threads, args.epochs, args.records
            )
        report["accuracy"] = acc

    args.out.joinpath("compare.json").write_text(json.dumps(report, indent=2, default=str))
    text = render(report, cfg)
    if args.result is not None:
        args.result.write_text(text)
    print(text)


def render(report: dict, cfg) -> str:
    lines = [f"# clarec sasrec vs RecBole 1.2.1 SASRec (CE) on {cfg.name}", ""]
    lines.append(
        "Same split folder (leave-one-out; when testing both read the validation item as input), same "
        "settings (d=64, 2 layers, 2 heads, inner 256, max length 50, dropout 0.5, Adam 1e-3, batch 256, "
        "early stopping on validation NDCG@20 with patience 10), one torch thread each. RecBole's lists "
        "are scored by `clarec evaluate` (history items removed first for the masked convention); "
        "clarec's figures are those of `benchmarks/sequential.py`'s `clarec run` of the same config "
        "(its records, `benchmarks/results/sequential/<config name>/<model>-<seed>.json`); "
        "`sasrec-prefixes` is `sasrec` trained on one example per target (`targets: last`), as RecBole "
        "trains, where `sasrec` predicts every position of a training window in one pass."
    )
    speed = report.get("speed")
    if speed:
        r = statistics.median(speed["recbole"])
        lines += [
            "",
            "## Speed (seconds per training epoch, median over all timed epochs)",
            "",
            "| clarec model | clarec | RecBole SASRec | clarec / RecBole |",
            "|---|---:|---:|---:|",
        ]
        for model, seconds in speed["clarec"].items():
            c = statistics.median(seconds)
            lines.append(f"| {model} | {c:.1f} | {r:.1f} | {c / r:.2f}× |")
        lines += [
            "",
            "An epoch is one pass over every training target: `sasrec` predicts every position of each "
            "training window in one pass; `sasrec-prefixes` and RecBole make one example of every "
            "prefix, one pass each (the same computation; clarec pads a batch to its longest prefix, "
            "RecBole to the maximum length).",
            "",
            f"Command: `{speed['command']}`",
        ]
        if "machine" in speed:
            lines += ["", f"Machine (speed): {speed['machine']}."]
    acc = report.get("accuracy")
    if acc:
        for conv in CONVENTIONS:
            lines += [
                "",
                f"## Test, history items {conv}",
                "",
                "| model | seeds | " + " | ".join(SHOWN) + " |",
            ]
            lines.append("|---|---|" + "---:|" * len(SHOWN))
            rows = [(f"clarec {model}", runs) for model, runs in acc["clarec"].items()]
            for label, runs in rows + [("RecBole SASRec", acc["recbole"])]:
                seeds = sorted(runs)
                if not seeds:
                    continue
                cells = [fmt([runs[s][conv][m] for s in seeds]) for m in SHOWN]
                lines.append(f"| {label} | {', '.join(map(str, seeds))} | " + " | ".join(cells) + " |")
            if versus := [line for m in ("ndcg@20", "hit@20") for line in versus_recbole(acc, conv, m)]:
                lines += ["", *versus]
        lines += [
            "",
            "RecBole's trainings: "
            + "; ".join(
                f"seed {s}: {acc['recbole'][s]['epochs']} epochs, {acc['recbole'][s]['seconds'] / 3600:.1f} h"
                for s in sorted(acc["recbole"])
            )
            + ".",
            "",
            f"Command: `{acc['command']}`",
        ]
    lines += ["", f"Machine: {report['machine']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
