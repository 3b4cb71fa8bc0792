"""Comparison tables for a run's results (markdown, also printed by the CLI)."""

from __future__ import annotations

from typing import Any

#: Shown at every K, then at the largest K only; the rest stay in results.json.
PER_K_METRICS = ("recall", "ndcg")
LARGEST_K_METRICS = ("hit", "mrr", "coverage", "novelty", "diversity")


def _columns(results: dict[str, Any], ks: list[int]) -> list[str]:
    first = next(iter(results.values()))["test"]
    wanted = [f"{m}@{k}" for k in ks for m in PER_K_METRICS] + [f"{m}@{max(ks)}" for m in LARGEST_K_METRICS]
    return [c for c in wanted if c in first]


def _cell(r: dict, col: str) -> str:
    value = r["test"].get(col)
    if value is None:
        return ""
    std = r.get("std", {}).get("test", {}).get(col)
    return f"{value:.4f} ± {std:.4f}" if std is not None else f"{value:.4f}"


def results_table(
    results: dict[str, Any], cfg=None, command_note: str | None = None, ks: list[int] | None = None
) -> str:
    """Markdown table: one row per model, test metrics (mean ± std over seeds when several)."""
    if not results:
        return "(no results)\n"
    if ks is None:
        ks = list(cfg.evaluation.ks) if cfg is not None else [10, 20]
    cols = _columns(results, ks)
    head = ["model", *cols, "fit s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name, r in results.items():
        lines.append(
            "| " + " | ".join([name, *(_cell(r, c) for c in cols), f"{r['fit_seconds']:.1f}"]) + " |"
        )
    text = "\n".join(lines) + "\n"
    if cfg is not None:
        seeds = next(iter(results.values())).get("seeds")
        note = f"Test split; full ranking over all items; seeds: {seeds if seeds else [cfg.seed]}."
        text = f"# {cfg.name}\n\n{note}\n\n{text}"
    if command_note:
        text += f"\nCommand: `{command_note}`\n"
    return text
