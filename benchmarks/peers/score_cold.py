"""Score peer recommendation files on a cold-start split with clarec's own evaluator, and write the
comparison table against clarec's baselines.

Runs with the project virtualenv (``.venv/bin/python``). Each recommendation file
(``user_id<TAB>item_id<TAB>rank``) is read with :func:`clarec.evaluate.external.read_recommendations`
and scored on the test part with :func:`clarec.evaluate.evaluate_rankings`, overall and on the
``cold_items`` segment (relevance restricted to the split's cold items; users with at least one
cold relevant item).

Usage::

    .venv/bin/python benchmarks/peers/score_cold.py SPLIT_DIR --recs A.tsv B.tsv C.tsv \\
        --runs lightfm-runs.json --baselines RUN_DIR/results.json --json scores.json \\
        --markdown benchmarks/results/peers-lightfm-cold.md --header header.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from clarec.data.split import load_predefined_split
from clarec.evaluate import evaluate_rankings
from clarec.evaluate.external import read_recommendations

KS = (10, 20)
#: The columns of the table: (segment, metric).
COLUMNS = [
    ("overall", "recall@20"),
    ("overall", "ndcg@20"),
    ("cold_items", "recall@20"),
    ("cold_items", "ndcg@20"),
    ("cold_only", "recall@20"),
    ("cold_only", "ndcg@20"),
]
SEGMENT_LABELS = {"overall": "all", "cold_items": "cold", "cold_only": "cold only"}


def score_file(split, path: Path) -> dict:
    """Overall and cold-item metrics of one recommendation file on the test part."""
    topk = read_recommendations(path, split, max(KS), strict=True)
    result = evaluate_rankings(
        topk,
        split.test.to_csr(),
        ks=KS,
        train=split.train.to_csr(),
        metrics=("recall", "ndcg", "hit"),
        cold_items=split.cold_items,
    )
    cold = np.zeros(split.train.n_items, dtype=bool)
    cold[split.cold_items] = True
    rows = topk[np.flatnonzero((topk >= 0).any(axis=1)), :20]
    # The cold-only ranking (recs-cold-seedN.tsv beside recs-seedN.tsv): relevance restricted to
    # the cold items, as clarec's `cold_only` segment.
    cold_path = path.with_name(path.name.replace("recs-", "recs-cold-", 1))
    cold_only = {}
    if cold_path.exists():
        rel = split.test.to_csr().multiply(cold[None, :].astype(np.float32)).tocsr()
        rel.eliminate_zeros()
        topk_cold = read_recommendations(cold_path, split, max(KS), strict=True)
        cold_only = evaluate_rankings(topk_cold, rel, ks=KS, metrics=("recall", "ndcg")).metrics
    return {
        "file": str(path),
        "overall": {**result.metrics, "users": float(len(result.users))},
        "cold_items": result.segments.get("cold_items", {}),
        "cold_only": cold_only,
        # How much of the top 20 the model gives to cold items at all.
        "cold_share_of_top20": float(cold[rows[rows >= 0]].mean()) if rows.size else 0.0,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def lightfm_summary(per_file: list[dict], runs: dict | None) -> dict:
    out: dict = {"seeds": len(per_file)}
    for seg, metric in COLUMNS:
        if all(metric in f[seg] for f in per_file):
            out[f"{seg}/{metric}"] = mean_std([f[seg][metric] for f in per_file])
    out["cold_share_of_top20"] = mean_std([f["cold_share_of_top20"] for f in per_file])
    if runs:
        out["fit_seconds"] = mean_std([r["fit_seconds"] for r in runs["runs"]])
    return out


def baseline_summary(results: dict) -> dict[str, dict]:
    """Mean ± std from a clarec ``results.json`` (segments averaged over seeds by the runner)."""
    out = {}
    for name, res in results.items():
        row = {"seeds": len(res.get("seeds", [1]))}
        std = res.get("std", {}).get("test", {})
        for seg, metric in COLUMNS:
            if seg == "overall":
                row[f"{seg}/{metric}"] = (res["test"][metric], std.get(metric, 0.0))
            elif seg in res.get("segments", {}):
                seg_std = res.get("segments_std", {}).get(seg, {}).get(metric)
                row[f"{seg}/{metric}"] = (res["segments"][seg][metric], seg_std)
        row["fit_seconds"] = (res["fit_seconds"], None)
        out[name] = row
    return out


def _fmt(ms, digits: int = 4) -> str:
    mean, std = ms
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def table(rows: dict[str, dict]) -> str:
    head = ["model", "seeds"] + [f"{m} ({SEGMENT_LABELS[s]})" for s, m in COLUMNS]
    lines = ["| " + " | ".join(head) + " | fit s |", "|---|---:|" + "---:|" * (len(COLUMNS) + 1)]
    for name, row in rows.items():
        cells = [name, str(row["seeds"])] + [
            _fmt(row[f"{s}/{m}"]) if f"{s}/{m}" in row else "" for s, m in COLUMNS
        ]
        fit = row.get("fit_seconds")
        cells.append(_fmt(fit, 2) if fit else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("split_dir", type=Path)
    p.add_argument("--recs", type=Path, nargs="+", required=True)
    p.add_argument("--runs", type=Path, help="lightfm-runs.json (parameters, fit seconds).")
    p.add_argument("--baselines", type=Path, help="results.json of a clarec run on the same split.")
    p.add_argument("--json", type=Path, help="Write every figure here.")
    p.add_argument("--markdown", type=Path, help="Write the report here.")
    p.add_argument("--header", type=Path, help="Markdown put before the table (commands, machine).")
    p.add_argument("--footer", type=Path, help="Markdown put after the table.")
    args = p.parse_args(argv)

    split = load_predefined_split(args.split_dir)
    per_file = [score_file(split, path) for path in args.recs]
    runs = json.loads(args.runs.read_text()) if args.runs else None
    rows: dict[str, dict] = {}
    if args.baselines:
        rows.update(baseline_summary(json.loads(args.baselines.read_text())))
    params = runs["params"] if runs else {}
    label = "lightfm-warp" + (f" (d={params['no_components']}, {params['epochs']} ep)" if params else "")
    rows[label] = lightfm_summary(per_file, runs)
    text = table(rows)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"per_file": per_file, "rows": rows, "lightfm": runs}, indent=2))
    if args.markdown:
        parts = [args.header.read_text().rstrip() + "\n"] if args.header else []
        parts.append(text + "\n")
        if args.footer:
            parts.append(args.footer.read_text().rstrip() + "\n")
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
