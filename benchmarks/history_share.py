"""How much of a next-item model's list (history items kept as candidates) its users' own items
fill: the share of top-K slots on the user's training or validation items, the room the masked
convention takes back. Diagnostic for ``peers-recbole-sasrec-beauty.md`` (why clarec's SASRec gains
more from masking than RecBole's); it selects nothing and reads no test item.

Each ``--recs LABEL=FILE`` is a recommendation file (``user_id<TAB>item_id<TAB>rank``, e.g. a RecBole
run's ``recs.tsv``); each ``--model LABEL=RUN/models/NAME`` a saved clarec sequential model, ranked
here from the ordered training + validation items, as when testing. Both over the test users of
the split folder.

Usage:
    .venv/bin/python benchmarks/history_share.py runs/peers-recbole-sasrec/split \\
        --recs recbole-2024=runs/peers-recbole-sasrec/recbole-2024/recs.tsv \\
        --model sasrec-prefixes-2024=runs/beauty-seq/sasrec-prefixes-2024/models/sasrec-prefixes \\
        --result benchmarks/results/history-share-beauty-seq.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import write_result  # noqa: E402

from clarec.data.split import load_predefined_split  # noqa: E402
from clarec.evaluate import Evaluator  # noqa: E402
from clarec.models.base import Recommender  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("split", type=Path)
    ap.add_argument("--recs", action="append", default=[], help="LABEL=FILE")
    ap.add_argument("--model", action="append", default=[], help="LABEL=saved model folder")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--result", type=Path, required=True)
    args = ap.parse_args()
    start = time.perf_counter()

    split = load_predefined_split(args.split)
    train, valid = split.train, split.valid
    users = np.unique(split.test.interactions["user"].to_numpy())
    seen = (train.to_csr() + valid.to_csr()).tocsr()
    # a model's test lists as the evaluation ranks them, history items kept as candidates
    lists = Evaluator(split, ks=(args.k,), history_items="kept", test_input="train+valid")
    rows = []
    for spec in args.recs:
        label, path = spec.split("=", 1)
        recs = pd.read_csv(path, sep="\t", dtype=str)
        recs = recs[recs["rank"].astype(int) <= args.k]
        u = train.user_index(recs["user_id"].tolist())
        i = train.item_index(recs["item_id"].tolist())
        rows.append((label, float(np.asarray(seen[u, i]).ravel().astype(bool).mean()), len(np.unique(u))))
    for spec in args.model:
        label, path = spec.split("=", 1)
        own = Path(path).parent.parent / "split"  # RUN/models/NAME: the split the model was trained on
        if own.is_dir() and not (load_predefined_split(own).train.item_ids == train.item_ids).all():
            raise SystemExit(f"{path}: trained on another item index than {args.split}")
        model = Recommender.load(path)
        if not lists.reads_test_input(model):
            raise SystemExit(f"{path}: not a model that scores an ordered history exactly")
        ids, _ = lists.ranked_lists(model, users, "test")
        inside = int(np.asarray(seen[np.repeat(users, ids.shape[1]), ids.ravel()]).astype(bool).sum())
        rows.append((label, inside / (len(users) * args.k), len(users)))

    lines = [
        f"# Share of the top {args.k} on the user's own items (history items kept)",
        "",
        f"Split folder `{args.split}`; the user's own items: training and validation items, the input when testing.",
        "",
        f"| list | users | share of top-{args.k} slots on own items |",
        "|---|---:|---:|",
        *(f"| {label} | {n} | {share:.4f} |" for label, share, n in rows),
    ]
    write_result(args.result, lines, time.perf_counter() - start, data=False)


if __name__ == "__main__":
    main()
