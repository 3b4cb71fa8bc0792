"""clarec against RecBole 1.2.1 on one clarec split, in one run: training speed and test accuracy.

Runs in the project venv. clarec's models are trained in this process; RecBole runs as a
subprocess of ``benchmarks/peers/.venv-recbole/bin/python recbole_run.py`` (see setup_recbole.sh)
on the same split folder (written by ``clarec split``). Both sides: embedding size 64, batch size
2048, 3 propagation layers, one negative per positive, the same torch thread count.

1. Speed (``--rounds`` rounds of ``--speed-epochs`` epochs, no validation): seconds of each
   training epoch. clarec: :class:`clarec.train.loop.Trainer` times one epoch as the batch
   iterator (shuffle, negative sampling, SGL's two views redrawn) plus forward, backward and
   Adam step of every batch; with ``valid=None`` there is no validation in it. RecBole: the
   wall time of ``Trainer._train_epoch`` (data loader with negative sampling, SGL's views redrawn
   in ``model.train()``, forward, backward, step), run through ``recbole_run.py --timing-only``
   (``fit`` without validation data). Within a round each clarec model and its RecBole
   counterpart run back to back, in alternating order from round to round, so that background
   load hits both sides alike. Reported: median seconds per epoch over all timed epochs and the
   ratio clarec / RecBole. RecBole core has no SimGCL / XSimGCL (they live in recbole-gnn), so
   those are compared against RecBole's SGL and LightGCN.
2. Accuracy: each model trained in full with early stopping on validation NDCG@20. RecBole's
   top-20 lists (train + valid items excluded) are scored with ``clarec evaluate``; clarec's
   models are scored with :class:`clarec.evaluate.Evaluator` (what ``clarec run`` reports),
   seed 2024, settings from ``configs/ml-100k-graph.yaml``, plus EASE as the non-contrastive
   reference. The script checks that the split folder equals the split ``clarec run`` makes from
   that config (same data, split method and seed).

Writes ``OUT/compare.json`` (everything) and the markdown result file.

Usage:
    CLAREC_DATA=../shared/datasets .venv/bin/python benchmarks/peers/recbole_compare.py \\
        --split runs/peers-recbole/split --out runs/peers-recbole/compare \\
        --result benchmarks/results/peers-recbole-ml-100k.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/_machine.py

from _machine import command_line, machine_info, machine_line, shown_path  # noqa: E402

from clarec.config import load_config  # noqa: E402
from clarec.data.split import load_predefined_split  # noqa: E402
from clarec.evaluate.evaluator import Evaluator  # noqa: E402
from clarec.models.registry import create  # noqa: E402

RECBOLE_PY = HERE / ".venv-recbole" / "bin" / "python"
RECBOLE_RUN = HERE / "recbole_run.py"
# clarec model -> RecBole core model timed next to it (None: not in RecBole core).
SPEED_PAIRS = [("bpr", "BPR"), ("lightgcn", "LightGCN"), ("sgl", "SGL"), ("simgcl", None), ("xsimgcl", None)]
CLAREC_ACCURACY = ["ease", "bpr", "lightgcn", "sgl", "simgcl", "xsimgcl"]
CONTRASTIVE = {"sgl", "simgcl", "xsimgcl"}
RECBOLE_ACCURACY = ["BPR", "LightGCN", "SGL"]
# RecBole settings for the full trainings: clarec's learning rate and patience for the same model
# (configs/ml-100k-graph.yaml); everything else RecBole's defaults (reg_weight, SGL's ssl_tau 0.5,
# ssl_weight 0.05, ED with drop_ratio 0.1; xavier initialisation).
RECBOLE_FULL = {
    "BPR": {"learning_rate": 0.001, "stopping_step": 10},
    "LightGCN": {"learning_rate": 0.001, "stopping_step": 20},
    "SGL": {"learning_rate": 0.005, "stopping_step": 10},
}
KS = (10, 20)


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load_avg()}] {msg}", flush=True)


def clarec_params(cfg, name: str, seed: int, threads: int, dim: int, batch: int, layers: int) -> dict:
    """The config's parameters for ``name`` with the shared shape settings forced."""
    params = next(dict(m.params) for m in cfg.models if m.name == name)
    if name != "ease":
        params.update(embedding_dim=dim, batch_size=batch, seed=seed, progress=False, num_threads=threads)
    if name not in ("ease", "bpr"):
        params.update(n_layers=layers)
    return params


def check_split(split_dir: Path, config: str) -> dict:
    """Does the split folder hold exactly the split ``clarec run CONFIG`` makes? (pairs per part)"""
    from clarec.experiment.runner import prepare_data

    made = prepare_data(load_config(config)).split
    saved = load_predefined_split(split_dir)
    out = {}
    for part in ("train", "valid", "test"):
        pairs = []
        for s in (made, saved):
            ds = s.part(part)
            df = ds.interactions
            u = ds.user_ids[df["user"].to_numpy()].astype(str)
            i = ds.item_ids[df["item"].to_numpy()].astype(str)
            pairs.append(set(zip(u.tolist(), i.tolist(), strict=True)))
        out[part] = {"pairs": len(pairs[1]), "identical": pairs[0] == pairs[1]}
    out["identical"] = all(v["identical"] for v in out.values() if isinstance(v, dict))
    return out


def time_clarec(split, cfg, name: str, args) -> list[float]:
    params = clarec_params(cfg, name, args.seed, args.threads, args.dim, args.batch, args.layers)
    params.update(epochs=args.speed_epochs, patience=args.speed_epochs)
    model = create(name, params)
    model.fit(split.train, valid=None)  # no validation: history seconds are training only
    return [float(s) for s in model.history_.seconds]


def run_recbole(model: str, out: Path, args, extra: list[str]) -> dict:
    cmd = [
        str(RECBOLE_PY),
        str(RECBOLE_RUN),
        "--split",
        str(args.split),
        "--model",
        model,
        "--out",
        str(out),
        "--embedding-size",
        str(args.dim),
        "--train-batch-size",
        str(args.batch),
        "--n-layers",
        str(args.layers),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (out / "stdout.txt").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"RecBole {model} failed ({proc.returncode}); see {out / 'stdout.txt'}")
    summary = json.loads((out / "recbole.json").read_text())
    summary["subprocess_seconds"] = wall
    summary["command"] = " ".join(shlex.quote(c) for c in cmd)
    return summary


def speed_phase(split, cfg, args) -> dict:
    times: dict[str, dict[str, list]] = {"clarec": {}, "recbole": {}}
    loads: list[str] = []
    for rnd in range(args.rounds):
        for c_name, r_name in SPEED_PAIRS:
            steps = [("clarec", c_name)] + ([("recbole", r_name)] if r_name else [])
            if rnd % 2 == 1:
                steps.reverse()
            for side, name in steps:
                loads.append(load_avg())
                if side == "clarec":
                    secs = time_clarec(split, cfg, name, args)
                else:
                    out = args.out / "speed" / f"{name}-round{rnd + 1}"
                    out.mkdir(parents=True, exist_ok=True)
                    extra = ["--epochs", str(args.speed_epochs), "--timing-only"]
                    secs = run_recbole(name, out, args, extra)["seconds_per_epoch"]
                times[side].setdefault(name, []).append(secs)
                log(f"speed round {rnd + 1} {side} {name}: " + " ".join(f"{s:.3f}" for s in secs))
    return {"epoch_seconds": times, "load_before_each_run": loads}


def speed_rows(speed: dict) -> list[dict]:
    def med(runs):
        return statistics.median([s for run in runs for s in run])

    c, r = speed["epoch_seconds"]["clarec"], speed["epoch_seconds"]["recbole"]
    rows = []
    for c_name, r_name in SPEED_PAIRS:
        refs = [r_name] if r_name else ["SGL", "LightGCN"]
        for ref in refs:
            rows.append(
                {
                    "clarec": c_name,
                    "recbole": ref,
                    "clarec_median": med(c[c_name]),
                    "clarec_min": min(s for run in c[c_name] for s in run),
                    "recbole_median": med(r[ref]),
                    "recbole_min": min(s for run in r[ref] for s in run),
                    "ratio": med(c[c_name]) / med(r[ref]),
                    "same_model": r_name is not None,
                }
            )
    return rows


def best_epoch_from_log(out: Path) -> int | None:
    """The 1-based epoch RecBole kept ("best eval result in epoch N" in its log is 0-based)."""
    found = None
    for path in sorted((out / "log").rglob("*.log")):
        for m in re.finditer(r"best eval result in epoch (\d+)", path.read_text(errors="replace")):
            found = int(m.group(1)) + 1
    return found


def accuracy_phase(split, cfg, args) -> dict:
    evaluator = Evaluator(split, ks=KS)
    clarec_res: dict = {}
    recbole_res: dict = {}
    for name in CLAREC_ACCURACY:
        params = clarec_params(cfg, name, args.seed, args.threads, args.dim, args.batch, args.layers)
        if args.clarec_epochs and "epochs" in params:
            params["epochs"] = args.clarec_epochs
        model = create(name, params)
        start = time.perf_counter()
        model.fit(split.train, valid=split.valid)
        fit = time.perf_counter() - start
        test = evaluator.evaluate(model, part="test").metrics
        valid = evaluator.evaluate(model, part="valid").metrics
        hist = getattr(model, "history_", None)
        clarec_res[name] = {
            "params": params,
            "fit_seconds": fit,
            "test": test,
            "valid": valid,
            "epochs_run": len(hist.epochs) if hist else None,
            "best_epoch": hist.best_epoch if hist else None,
        }
        log(f"accuracy clarec {name}: test ndcg@20 {test['ndcg@20']:.4f} fit {fit:.1f}s")
        partial = {"clarec": clarec_res, "recbole": recbole_res}
        (args.out / "accuracy-partial.json").write_text(json.dumps(partial, indent=2, default=str))
    for name in RECBOLE_ACCURACY:
        out = args.out / "accuracy" / name
        out.mkdir(parents=True, exist_ok=True)
        s = RECBOLE_FULL[name]
        extra = [
            "--epochs",
            str(args.max_epochs),
            "--learning-rate",
            str(s["learning_rate"]),
            "--stopping-step",
            str(s["stopping_step"]),
            "--eval-step",
            "1",
            "--k",
            "20",
        ]
        summary = run_recbole(name, out, args, extra)
        eval_json = out / "clarec-eval.json"
        cmd = [
            str(Path(sys.executable).parent / "clarec"),
            "evaluate",
            "--split",
            str(args.split),
            "--recs",
            str(out / "recs.tsv"),
            "--k",
            "10",
            "20",
            "--json",
            str(eval_json),
        ]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        summary["clarec_eval"] = json.loads(eval_json.read_text())
        summary["best_epoch"] = best_epoch_from_log(out)
        summary["clarec_eval_command"] = " ".join(shlex.quote(c) for c in cmd)
        recbole_res[name] = summary
        log(
            f"accuracy recbole {name}: clarec-scored test ndcg@20 "
            f"{summary['clarec_eval']['ndcg@20']:.4f} (RecBole's own {summary['recbole_test_ndcg@20']:.4f}), "
            f"{summary['epochs_run']} epochs, fit {summary['fit_seconds']:.0f}s"
        )
        partial = {"clarec": clarec_res, "recbole": recbole_res}
        (args.out / "accuracy-partial.json").write_text(json.dumps(partial, indent=2, default=str))
    return {"clarec": clarec_res, "recbole": recbole_res}


def fmt(x: float, nd: int = 4) -> str:
    return f"{x:.{nd}f}"


def render(res: dict, args, command: str) -> str:
    lines = [
        "# clarec vs RecBole on ML-100K (same split, same metric code)",
        "",
        f"Split: `{shown_path(args.split)}` (`clarec split configs/ml-100k.yaml`: ratings ≥ 4, per-user random 8:1:1, "
        f"seed 2024; {res['split_check']['train']['pairs']} / {res['split_check']['valid']['pairs']} / "
        f"{res['split_check']['test']['pairs']} train / valid / test pairs). Identical to the split "
        f"`clarec run configs/ml-100k-graph.yaml` makes: **{res['split_check']['identical']}**.  ",
        f"Shared settings: embedding size {args.dim}, batch size {args.batch}, {args.layers} layers "
        f"(graph models), 1 uniform negative per positive, torch threads {args.threads} on both sides, "
        f"seed {args.seed}.",
        "",
    ]
    if "speed" in res:
        sp = res["speed"]
        lines += [
            f"## Speed: seconds per training epoch ({args.rounds} rounds × {args.speed_epochs} epochs each, "
            "no validation)",
            "",
            "| clarec model | RecBole model | clarec s/epoch (median) | RecBole s/epoch (median) | "
            "clarec min | RecBole min | clarec / RecBole | ≤ 0.5? |",
            "|---|---|---:|---:|---:|---:|---:|:---:|",
        ]
        for row in speed_rows(sp):
            ref = row["recbole"] if row["same_model"] else f"{row['recbole']} (no SimGCL in RecBole core)"
            lines.append(
                f"| {row['clarec']} | {ref} | {fmt(row['clarec_median'], 3)} | {fmt(row['recbole_median'], 3)} | "
                f"{fmt(row['clarec_min'], 3)} | {fmt(row['recbole_min'], 3)} | {fmt(row['ratio'], 3)} | "
                f"{'yes' if row['ratio'] <= 0.5 else 'no'} |"
            )
        lines += [
            "",
            "Every timed epoch (seconds), per round:",
            "",
        ]
        for side in ("clarec", "recbole"):
            for name, runs in sp["epoch_seconds"][side].items():
                shown = "; ".join(" ".join(f"{s:.2f}" for s in run) for run in runs)
                lines.append(f"- {side} {name}: {shown}")
        lines += [
            "",
            f"Load average (1/5/15 min) before each timed run: {', '.join(sp['load_before_each_run'])}.",
            "",
        ]
    if "accuracy" in res:
        acc = res["accuracy"]
        lines += [
            "## Accuracy: test split, full ranking (train + valid items excluded), clarec's metric code",
            "",
            "| toolkit | model | ndcg@20 | recall@20 | ndcg@10 | recall@10 | valid ndcg@20 | epochs (best) | "
            "fit s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in acc["recbole"].items():
            t = r["clarec_eval"]
            lines.append(
                f"| RecBole | {name} | {fmt(t['ndcg@20'])} | {fmt(t['recall@20'])} | {fmt(t['ndcg@10'])} | "
                f"{fmt(t['recall@10'])} | {fmt(r['best_valid_ndcg@20'])} | {r['epochs_run']} ({r.get('best_epoch')}) | "
                f"{r['fit_seconds']:.0f} |"
            )
        for name, r in acc["clarec"].items():
            t, v = r["test"], r["valid"]
            ep = "–" if r["epochs_run"] is None else f"{r['epochs_run']} ({r['best_epoch']})"
            lines.append(
                f"| clarec | {name} | {fmt(t['ndcg@20'])} | {fmt(t['recall@20'])} | {fmt(t['ndcg@10'])} | "
                f"{fmt(t['recall@10'])} | {fmt(v['ndcg@20'])} | {ep} | {r['fit_seconds']:.0f} |"
            )
        lines += ["", "RecBole's own test NDCG@20 on the same model (cross-check of the scoring): "]
        lines[-1] += (
            ", ".join(f"{n} {fmt(r['recbole_test_ndcg@20'])}" for n, r in acc["recbole"].items()) + "."
        )
        lines += ["", "Settings:", ""]
        for name, r in acc["recbole"].items():
            s = r["settings"]
            reg = s["reg_weight"] if s["reg_weight"] is not None else "none (RecBole's BPR has no L2 term)"
            lines.append(
                f"- RecBole {name}: lr {s['learning_rate']}, reg_weight {reg}, "
                f"max {s['epochs']} epochs, stopping_step {s['stopping_step']}, eval every epoch; "
                "other parameters RecBole's defaults."
            )
        for name, r in acc["clarec"].items():
            p = {k: v for k, v in r["params"].items() if k not in ("progress", "num_threads")}
            lines.append(f"- clarec {name}: `{json.dumps(p)}`")
        lines.append("")
    lines += [
        f"Command: `{command}`  ",
        f"clarec code: {res['clarec_code']}  ",
        f"Machine: {machine_line()}; load average at start {res['load_start']}, at end {res['load_end']}; "
        f"whole run {res['seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", type=Path, required=True, help="split folder written by `clarec split`")
    ap.add_argument("--out", type=Path, required=True, help="working folder (RecBole outputs, compare.json)")
    ap.add_argument("--result", type=Path, default=None, help="markdown result file")
    ap.add_argument("--config", default="configs/ml-100k-graph.yaml", help="clarec model settings")
    ap.add_argument("--phases", default="speed,accuracy", help="comma list: speed, accuracy")
    ap.add_argument("--speed-epochs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-epochs", type=int, default=500, help="cap for RecBole's full trainings")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads on both sides (1: on a shared 2-core machine, 2 threads stall on the other job)",
    )
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--clarec-epochs", type=int, default=None, help="cap clarec's epochs (smoke tests only)")
    ap.add_argument("--code-note", default="", help="what clarec code ran (e.g. the commit), for the report")
    args = ap.parse_args()
    args.split, args.out = args.split.resolve(), args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if not RECBOLE_PY.exists():
        raise SystemExit(f"{RECBOLE_PY} missing: run benchmarks/peers/setup_recbole.sh first")
    torch.set_num_threads(args.threads)
    # clarec's Trainer sets torch to every core unless the model passes num_threads, and bpr has no
    # such parameter: hold every clarec model at --threads, as RecBole is held by recbole_run.py.
    import clarec.train.loop as loop

    loop.set_torch_threads = lambda n=None: (torch.set_num_threads(args.threads), args.threads)[1]
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    command = command_line()

    import clarec

    res: dict = {
        "command": command,
        "machine": machine_info(),
        "load_start": load_avg(),
        "clarec_code": f"`{shown_path(Path(clarec.__file__).parent)}` {args.code_note}".strip(),
    }
    start = time.perf_counter()
    res["split_check"] = check_split(args.split, args.config)
    log(f"split check: {res['split_check']}")
    cfg = load_config(args.config)
    split = load_predefined_split(args.split)
    np.random.seed(args.seed)
    if "speed" in phases:
        res["speed"] = speed_phase(split, cfg, args)
        (args.out / "compare.json").write_text(json.dumps(res, indent=2, default=str))
    if "accuracy" in phases:
        res["accuracy"] = accuracy_phase(split, cfg, args)
    res["load_end"] = load_avg()
    res["seconds"] = time.perf_counter() - start
    (args.out / "compare.json").write_text(json.dumps(res, indent=2, default=str))
    text = render(res, args, command)
    if args.result:
        args.result.parent.mkdir(parents=True, exist_ok=True)
        args.result.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
