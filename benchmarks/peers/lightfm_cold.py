"""LightFM hybrid (WARP) on a clarec cold-start split folder: tune on validation, write test rankings.

Runs with the LightFM virtualenv's python (``benchmarks/peers/.venv-lightfm``, built by
``setup_lightfm.sh``); clarec is not installed there, so the split folder is read with ``csv`` and
the validation metrics used for tuning are re-implemented here (Recall@K = hits / |relevant|, NDCG@K
with the ideal DCG over min(|relevant|, K) ranks, as in ``clarec.evaluate.metrics``). The test
rankings are scored by ``score_cold.py`` with clarec's own evaluator.

Item features: an identity feature for every warm item (one with a training interaction) plus
content tokens: lower-cased title words, the year, genres and tags (``items.tsv``; tags there are
already restricted to training user-item pairs). Cold items get content tokens only: their identity
feature would never be trained. Each item's feature row is L1-normalised by default (as
``lightfm.data.Dataset`` does), or left at weight 1 per feature (``--normalize none``). Users get
identity features (LightFM's default).

Usage::

    python lightfm_cold.py SPLIT_DIR OUT_DIR --tune            # grid on validation cold items
    python lightfm_cold.py SPLIT_DIR OUT_DIR --seeds 2024 2025 2026 [--no-components 64 ...]

writes ``OUT_DIR/recs-seed<seed>.tsv`` (``user_id<TAB>item_id<TAB>rank``, top 100 per test user,
train and valid items excluded), ``OUT_DIR/lightfm-runs.json`` (parameters, fit seconds per seed)
and, with ``--tune``, ``OUT_DIR/tuning.json``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

csv.field_size_limit(sys.maxsize)

#: A trailing "(1995)" (or "(1995-1996)") in a MovieLens title.
YEAR_RE = re.compile(r"\((\d{4})(?:[-–]\d{4})?\)\s*$")
WORD_RE = re.compile(r"[^\W_]+")

#: The validation grid: every combination is fitted once (random_state 2024), evaluated every
#: ``--eval-every`` epochs on the validation part; the best (by cold NDCG@20) is reported.
#: ``normalize="none"`` was tried first and dropped: on validation it lost ~20% overall NDCG@20 and
#: was no better on cold items (both ~0), see benchmarks/peers/README.md.
GRID = {
    "no_components": [32, 64],
    "learning_rate": [0.05],
    "item_alpha": [0.0, 1e-4],
    "identity_weight": [1.0, 0.1],
    "normalize": ["rows"],
}


def read_part(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        return [(row["user_id"], row["item_id"]) for row in reader]


def read_items(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
        return {row["item_id"]: row for row in reader}


def item_tokens(row: dict[str, str]) -> list[str]:
    """Content features of one item: ``title:<word>``, ``year:<yyyy>``, ``genre:<g>``, ``tag:<t>``."""
    title = row.get("title", "") or ""
    year = ""
    m = YEAR_RE.search(title)
    if m:
        year, title = m.group(1), title[: m.start()]
    elif row.get("year"):
        try:
            year = str(int(float(row["year"])))
        except ValueError:
            year = ""
    tokens = [f"title:{w}" for w in WORD_RE.findall(title.lower())]
    if year:
        tokens.append(f"year:{year}")
    for col, prefix in (("genres", "genre"), ("tags", "tag")):
        for value in (row.get(col) or "").split("|"):
            value = value.strip().lower()
            # MovieLens marks a movie without genre as "(no genres listed)": no information.
            if value and value != "(no genres listed)":
                tokens.append(f"{prefix}:{value}")
    return sorted(set(tokens))


class SplitData:
    """The split folder as index maps and sparse matrices."""

    def __init__(self, folder: Path):
        parts = {p: read_part(folder / f"{p}.tsv") for p in ("train", "valid", "test")}
        items = read_items(folder / "items.tsv") if (folder / "items.tsv").is_file() else {}
        meta = json.loads((folder / "split.json").read_text()) if (folder / "split.json").is_file() else {}
        users = sorted({u for rows in parts.values() for u, _ in rows}, key=_id_key)
        item_ids = sorted(set(items) | {i for rows in parts.values() for _, i in rows}, key=_id_key)
        self.user_ids = np.array(users)
        self.item_ids = np.array(item_ids)
        self.user_index = {u: n for n, u in enumerate(users)}
        self.item_index = {i: n for n, i in enumerate(item_ids)}
        self.n_users, self.n_items = len(users), len(item_ids)
        self.parts = {p: self._csr(rows) for p, rows in parts.items()}
        warm = np.zeros(self.n_items, dtype=bool)
        warm[self.parts["train"].indices] = True
        self.warm = warm
        never_trained = np.flatnonzero(~warm)
        if "cold_items" in meta:
            self.cold = np.sort(np.array([self.item_index[c] for c in meta["cold_items"]], dtype=np.int64))
        else:
            self.cold = never_trained
        self.items = items

    def _csr(self, rows: list[tuple[str, str]]) -> sp.csr_matrix:
        u = np.fromiter((self.user_index[a] for a, _ in rows), dtype=np.int32, count=len(rows))
        i = np.fromiter((self.item_index[b] for _, b in rows), dtype=np.int32, count=len(rows))
        m = sp.csr_matrix((np.ones(len(rows), np.float32), (u, i)), shape=(self.n_users, self.n_items))
        m.data[:] = 1.0  # duplicates collapse to one positive
        return m

    def item_features(self, normalize: str, identity_weight: float = 1.0) -> tuple[sp.csr_matrix, int]:
        """Identity (warm items only, value ``identity_weight``) + content tokens (value 1); with
        ``normalize="rows"`` each row is then divided by its sum. Returns the matrix and the
        number of content tokens."""
        vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        n_identity = self.n_items  # identity columns come first; cold items' columns stay unused
        for n, item in enumerate(self.item_ids):
            if self.warm[n] and identity_weight > 0:
                rows.append(n)
                cols.append(n)
                vals.append(identity_weight)
            for tok in item_tokens(self.items.get(item, {})):
                rows.append(n)
                cols.append(n_identity + vocab.setdefault(tok, len(vocab)))
                vals.append(1.0)
        feats = sp.csr_matrix(
            (np.asarray(vals, np.float32), (rows, cols)), shape=(self.n_items, n_identity + len(vocab))
        )
        if normalize == "rows":
            sums = np.asarray(feats.sum(axis=1)).ravel()
            sums[sums == 0] = 1.0
            feats = sp.diags(1.0 / sums).astype(np.float32) @ feats
        return feats.tocsr().astype(np.float32), len(vocab)


def _id_key(x: str):
    # Numeric ids in numeric order, others after them as strings: only for a stable layout.
    return (0, int(x), "") if x.isdigit() else (1, 0, x)


def all_scores(model: LightFM, item_features: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    """Scores of every item for ``users``: the same value ``model.predict`` gives, in one product."""
    item_bias, item_emb = model.get_item_representations(item_features)
    user_bias, user_emb = model.get_user_representations()
    return (user_emb[users] @ item_emb.T + user_bias[users, None] + item_bias[None, :]).astype(np.float32)


def top_k(scores: np.ndarray, excluded: sp.csr_matrix, k: int) -> np.ndarray:
    """Indices of the ``k`` best items per row, best first, excluded items never chosen."""
    scores = scores.copy()
    rows = np.repeat(np.arange(excluded.shape[0]), np.diff(excluded.indptr))
    scores[rows, excluded.indices] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def recall_ndcg(topk: np.ndarray, relevant: sp.csr_matrix, k: int) -> tuple[float, float, int]:
    """Mean Recall@k and NDCG@k over rows with a relevant item (clarec's definitions)."""
    n_rel = np.diff(relevant.indptr)
    rows = np.flatnonzero(n_rel > 0)
    hits = np.zeros((len(rows), k))
    for r, row in enumerate(rows):
        rel = set(relevant.indices[relevant.indptr[row] : relevant.indptr[row + 1]].tolist())
        hits[r] = [t in rel for t in topk[row, :k]]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_rel[rows], k) - 1]
    recall = hits.sum(1) / n_rel[rows]
    ndcg = (hits * discount).sum(1) / ideal
    return float(recall.mean()), float(ndcg.mean()), len(rows)


def only_items(m: sp.csr_matrix, items: np.ndarray) -> sp.csr_matrix:
    keep = np.zeros(m.shape[1], dtype=bool)
    keep[items] = True
    out = m.copy()
    out.data = np.where(keep[out.indices], out.data, 0).astype(out.data.dtype)
    out.eliminate_zeros()
    return out


def write_recs(path: Path, data: SplitData, users: np.ndarray, ranked: np.ndarray) -> None:
    """``user_id<TAB>item_id<TAB>rank`` rows of each user's ranking (``-1`` slots skipped)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["user_id", "item_id", "rank"])
        for row, u in enumerate(users):
            for rank, item in enumerate(ranked[row], start=1):
                if item >= 0:
                    w.writerow([data.user_ids[u], data.item_ids[item], rank])


def make_model(params: dict, seed: int) -> LightFM:
    return LightFM(
        loss="warp",
        no_components=params["no_components"],
        learning_rate=params["learning_rate"],
        item_alpha=params["item_alpha"],
        user_alpha=params.get("user_alpha", 0.0),
        max_sampled=params.get("max_sampled", 10),
        random_state=seed,
    )


def validate(data: SplitData, args) -> dict:
    """Fit every grid point on train and score the validation part every few epochs."""
    valid = data.parts["valid"]
    users = np.flatnonzero(np.diff(valid.indptr))
    rel = valid[users]
    rel_cold = only_items(rel, data.cold)
    excluded = data.parts["train"][users]
    k = 20
    results = []
    keys = list(GRID)
    for values in itertools.product(*(GRID[key] for key in keys)):
        params = dict(zip(keys, values, strict=True))
        feats, _ = data.item_features(params["normalize"], params["identity_weight"])
        model = make_model(params, args.seeds[0])
        curve, fit_s, done = [], 0.0, 0
        for target in range(args.eval_every, args.max_epochs + 1, args.eval_every):
            start = time.perf_counter()
            model.fit_partial(
                data.parts["train"], item_features=feats, epochs=target - done, num_threads=args.threads
            )
            fit_s += time.perf_counter() - start
            done = target
            ranked = top_k(all_scores(model, feats, users), excluded, k)
            r_all, n_all, _ = recall_ndcg(ranked, rel, k)
            r_cold, n_cold, n_users_cold = recall_ndcg(ranked, rel_cold, k)
            curve.append(
                {
                    "epochs": target,
                    "fit_seconds": round(fit_s, 2),
                    "recall@20": r_all,
                    "ndcg@20": n_all,
                    "cold_recall@20": r_cold,
                    "cold_ndcg@20": n_cold,
                    "cold_users": n_users_cold,
                }
            )
            print(json.dumps({**params, **curve[-1]}), flush=True)
        results.append({"params": params, "curve": curve})
    best_params, best_point = max(
        ((r["params"], p) for r in results for p in r["curve"]), key=lambda rp: rp[1]["cold_ndcg@20"]
    )
    return {
        "grid": GRID,
        "criterion": "cold_ndcg@20 on the validation part (cold items of valid), random_state "
        f"{args.seeds[0]}",
        "best": {**best_params, "epochs": best_point["epochs"]},
        "best_point": best_point,
        "results": results,
    }


def run_test(data: SplitData, params: dict, args, out: Path) -> dict:
    """Fit with ``params`` once per seed and write each seed's top-``k`` test rankings."""
    test = data.parts["test"]
    users = np.flatnonzero(np.diff(test.indptr))
    excluded = (data.parts["train"] + data.parts["valid"])[users]
    excluded.data[:] = 1.0
    feats, vocab = data.item_features(params["normalize"], params["identity_weight"])
    runs = []
    for seed in args.seeds:
        model = make_model(params, seed)
        start = time.perf_counter()
        model.fit(data.parts["train"], item_features=feats, epochs=params["epochs"], num_threads=args.threads)
        fit_s = time.perf_counter() - start
        ranked = top_k(all_scores(model, feats, users), excluded, args.k)
        path = out / f"recs-seed{seed}.tsv"
        write_recs(path, data, users, ranked)
        cold_share = float(np.isin(ranked[:, :20], data.cold).mean())
        # clarec's cold_only protocol: rank the cold items only (warm ones removed from the
        # candidates), to tell "cannot order cold items" from "orders them below warm items".
        # Written for score_cold.py (clarec's evaluator) and checked here with the same formulas.
        scores = all_scores(model, feats, users)
        not_cold = np.ones(data.n_items, dtype=bool)
        not_cold[data.cold] = False
        scores[:, not_cold] = -np.inf
        cold_rel = only_items(test[users], data.cold)
        ranked_cold = top_k(scores, excluded, 20)
        ranked_cold[np.take_along_axis(scores, ranked_cold, axis=1) == -np.inf] = -1
        write_recs(out / f"recs-cold-seed{seed}.tsv", data, users, ranked_cold)
        r_c, n_c, _ = recall_ndcg(ranked_cold, cold_rel, 20)
        # A random order of the same candidates finds min(20, C)/C of a user's cold items on average.
        with_cold = np.flatnonzero(np.diff(cold_rel.indptr))
        n_cand = len(data.cold) - np.asarray(excluded[with_cold][:, data.cold].sum(axis=1)).ravel()
        random_recall = float(np.mean(np.minimum(20, n_cand) / n_cand))
        runs.append(
            {
                "seed": seed,
                "fit_seconds": fit_s,
                "recs": path.name,
                "cold_share_of_top20": cold_share,
                "cold_candidates_only": {"recall@20": r_c, "ndcg@20": n_c, "random_recall@20": random_recall},
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    return {
        "params": params,
        "item_features": {
            "identity_warm_items": int(data.warm.sum()),
            "content_tokens": vocab,
            "shape": list(feats.shape),
        },
        "users": {"n": data.n_users, "test_users_ranked": len(users)},
        "items": {"n": data.n_items, "warm": int(data.warm.sum()), "cold": len(data.cold)},
        "threads": args.threads,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("split_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--tune", action="store_true", help="Run the validation grid and use its best point.")
    p.add_argument("--seeds", type=int, nargs="+", default=[2024, 2025, 2026])
    p.add_argument("--no-components", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--item-alpha", type=float, default=0.0)
    p.add_argument("--normalize", choices=["rows", "none"], default="rows")
    p.add_argument("--identity-weight", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-epochs", type=int, default=40, help="Tuning: longest run.")
    p.add_argument("--eval-every", type=int, default=10, help="Tuning: epochs between validations.")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--k", type=int, default=100, help="Length of each written ranking.")
    args = p.parse_args(argv)

    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = SplitData(args.split_dir)
    untrained = np.setdiff1d(np.flatnonzero(~data.warm), data.cold)
    print(
        f"split: {data.n_users} users, {data.n_items} items ({int(data.warm.sum())} warm, "
        f"{len(data.cold)} cold, {len(untrained)} other untrained); train {data.parts['train'].nnz}, "
        f"valid {data.parts['valid'].nnz}, test {data.parts['test'].nnz}",
        flush=True,
    )
    if args.tune:
        tuning = validate(data, args)
        (out / "tuning.json").write_text(json.dumps(tuning, indent=2))
        params = tuning["best"]
        print("best on validation:", json.dumps(tuning["best_point"] | params), flush=True)
    else:
        params = {
            "no_components": args.no_components,
            "learning_rate": args.learning_rate,
            "item_alpha": args.item_alpha,
            "normalize": args.normalize,
            "identity_weight": args.identity_weight,
            "epochs": args.epochs,
        }
    report = run_test(data, params, args, out)
    report["seconds_total"] = time.perf_counter() - start
    (out / "lightfm-runs.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
