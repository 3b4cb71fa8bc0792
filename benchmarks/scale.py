"""clarec at ML-20M size on one machine: a synthetic set with ML-20M's shape (``clarec data synth``),
then each stage of a run, timed, with the peak memory of the process during the stage.

Stages: write the synthetic files; load + clean them with the real MovieLens loader, keep ratings
>= 4 and split 8:1:1 at random (what a config with ``data: {name: ml-20m, min_rating: 4}`` does;
``--shape amazon2023``: the Amazon 2023 loader, every review kept);
the dataset to parquet and back; training of ``lightgcn`` (one epoch), the two-tower (its item texts
encoded first, then one epoch) and ``sasrec`` (one epoch with sampled BCE,
20 steps with the softmax over every item and that epoch projected), each on the training part with
no validation pass; full-ranking evaluation of every test user with the trained ``lightgcn``. Memory is the resident set of this one process, sampled every 50 ms: "start" is what the
process held when the stage began (data of earlier stages included), "peak" the most during it.

    python benchmarks/scale.py --shape ml-20m [--scale 1.0] [--threads 1] [--work FOLDER]
    python benchmarks/scale.py --shape amazon2023 --models --output benchmarks/results/scale-amazon2023.md

The model settings are in ``MODELS`` below, fixed before any run (nothing is tuned or chosen: this
measures time and memory, not accuracy, and the data is synthetic). The evaluation stage ranks the
test users once to time it; its figures are neither printed nor written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _machine import REPO, command_line, machine_line

#: One epoch of each model, on the training part. LightGCN propagates the whole graph at every step,
#: so at this size it takes large batches. SASRec's softmax over every item runs ``max_steps`` steps
#: and its epoch is projected from them (the whole epoch would take two hours here); the others run
#: their whole epoch.
MODELS = {
    "lightgcn": {"epochs": 1, "batch_size": 65536, "embedding_dim": 64, "n_layers": 2},
    "two-tower": {"epochs": 1, "batch_size": 4096},
    "sasrec (bce)": {"epochs": 1, "loss": "bce", "batch_size": 256, "max_len": 50},
    "sasrec (ce, 20 steps)": {"epochs": 1, "loss": "ce", "batch_size": 256, "max_len": 50, "max_steps": 20},
}


def epoch_examples(name: str, train, params: dict) -> int:
    """Training examples of one epoch: one per training window for the sequential models
    (``sequential._base.training_windows``), one per training interaction for the two-tower."""
    if name == "sasrec":
        lengths = np.diff(train.to_csr().indptr)
        return int(np.ceil((lengths[lengths >= 2] - 1) / params["max_len"]).sum())
    return train.n_interactions


class Memory:
    """Resident set size of this process, sampled in a thread; :meth:`stage` starts a new peak."""

    def __init__(self):
        self.peak = self.now()
        threading.Thread(target=self._watch, daemon=True).start()

    @staticmethod
    def now() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30

    def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            time.sleep(0.05)

    def stage(self) -> float:
        self.peak = start = self.now()
        return start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="ml-20m")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="folder for the files (default: temporary)")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    memory = Memory()
    rows: list[dict] = []

    def stage(name: str, fn, note: str = ""):
        start_gib = memory.stage()
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
        rows.append(
            {"stage": name, "seconds": seconds, "start": start_gib, "peak": memory.peak, "note": note}
        )
        print(
            f"{name}: {seconds:.1f}s, peak {memory.peak:.2f} GiB (start {start_gib:.2f}) {note}", flush=True
        )
        return out

    work = args.work or Path(tempfile.mkdtemp(prefix="clarec-scale-"))
    root = work / "data"
    shutil.rmtree(root / args.shape, ignore_errors=True)
    from clarec.data.synth import synthesize

    info = stage(
        "synthesize (clarec data synth)",
        lambda: synthesize(args.shape, root / args.shape, args.scale, args.seed),
    )
    stage_note = f"{info['interactions']:,} interactions, {info['users']:,} users, {info['items']:,} items"
    rows[-1]["note"] = stage_note

    from clarec.data.loading import load_from_config
    from clarec.data.split import random_split

    if args.shape.startswith("ml-"):
        what, data = (
            "load + clean (MovieLens CSV loader), ratings >= 4",
            {"name": args.shape, "min_rating": 4},
        )
    else:  # every review an interaction, as the Amazon sets are used
        what, data = (
            "load + clean (Amazon 2023 loader)",
            {"source": "amazon2023", "path": str(root / args.shape)},
        )
    ds = stage(what, lambda: load_from_config(data, root=root).dataset)
    split = stage("random split 8:1:1", lambda: random_split(ds, (0.8, 0.1, 0.1), seed=args.seed))
    d = split.describe()
    rows[-1]["note"] = f"train {d['train']:,} / valid {d['valid']:,} / test {d['test']:,}"
    from clarec.data.dataset import Dataset

    stage("dataset to parquet", lambda: ds.save(work / "parquet"))
    again = stage("dataset from parquet", lambda: Dataset.load(work / "parquet"))
    assert again.n_interactions == ds.n_interactions
    del again

    from clarec.models.registry import create

    cache = work / "embeddings"
    if any(label.startswith("two-tower") for label in args.models):
        from clarec.models._lm import build_encoder, choose_fields, item_texts

        items = split.train.items
        texts = item_texts(items, choose_fields(items, None, "two-tower"), "two-tower")
        encoder = build_encoder(None, str(cache))
        stage("encode the item texts (MiniLM, for the two-tower)", lambda: encoder.encode(texts))
        rows[-1]["note"] = f"{len(texts):,} texts, e.g. {texts[0]!r}"

    trained = {}
    for label in args.models:
        name = label.split(" ")[0]
        params = {**MODELS[label], "num_threads": args.threads, "seed": args.seed}
        if name == "two-tower":
            params["cache_dir"] = str(cache)  # the vectors just encoded
        if name != "two-tower":
            params["progress"] = False
        model = create(name, params)
        what = f"train {label}" if "max_steps" in MODELS[label] else f"one epoch: {label}"
        stage(what, lambda m=model: m.fit(split.train), json.dumps(MODELS[label]))
        trained[name] = model
        steps = MODELS[label].get("max_steps")
        if steps:
            per_epoch = int(
                np.ceil(epoch_examples(name, split.train, MODELS[label]) / MODELS[label]["batch_size"])
            )
            done = min(steps, per_epoch)
            rows[-1]["note"] += (
                f"; {done} of the epoch's {per_epoch:,} steps, {rows[-1]['seconds'] / done:.2f} s each"
            )
    if "lightgcn" in trained:
        from clarec.evaluate.evaluator import Evaluator

        evaluator = Evaluator(split, ks=(10, 20))
        result = stage(
            "full-ranking evaluation, every test user (lightgcn)",
            lambda: evaluator.evaluate(trained["lightgcn"]),
        )
        rows[-1]["note"] = f"{len(result.users):,} users x {split.train.n_items:,} items"

    lines = [
        f"# clarec at {args.shape} size ({'synthetic, scale ' + str(args.scale) if args.scale != 1 else 'synthetic'})",
        "",
        f"Command: `{command_line([os.path.relpath(__file__, REPO), *(argv or sys.argv[1:])])}`  ",
        f"Machine: {machine_line()}; {args.threads} torch thread(s)",
        "",
        "Data: `clarec data synth` with the shape of the real set (users, items, interactions, a long tail "
        "of item popularity, log-normal user activity; not real data: these figures say how fast and "
        "how big, not how good). One process; memory is its resident set: at the start of the stage "
        "(what earlier stages left) and the peak during it.",
        "",
        "| stage | seconds | memory at start (GiB) | peak memory (GiB) | notes |",
        "|---|---:|---:|---:|---|",
        *(
            f"| {r['stage']} | {r['seconds']:.1f} | {r['start']:.2f} | {r['peak']:.2f} | {r['note']} |"
            for r in rows
        ),
        "",
    ]
    output = args.output or REPO / "benchmarks" / "results" / "scale.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines))
    print("\n".join(lines))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
