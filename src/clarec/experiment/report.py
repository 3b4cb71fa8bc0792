"""Comparison tables for a run's results (markdown, also printed by the CLI)."""

from __future__ import annotations

import math
from typing import Any

#: Shown at every K, then at the largest K only; the rest stay in results.json.
PER_K_METRICS = ("recall", "ndcg")
LARGEST_K_METRICS = ("hit", "mrr", "coverage", "novelty", "diversity")
#: Segments given their own table when a run has them (cold-start splits).
COLD_SEGMENTS = {
    "cold_items": "cold items, ranked in the whole catalogue",
    "cold_only": "cold items, ranked among the cold items only",
}
#: The long tail: test items by their training popularity, each third of the interactions.
TAIL_SEGMENTS = {
    "items_head": "the most popular items, a third of the training interactions",
    "items_mid": "the next third",
    "items_tail": "the long tail, the last third (items unseen in training included)",
}


def table_columns(results: dict[str, Any], ks: list[int]) -> list[str]:
    first = next(iter(results.values()))["test"]
    wanted = [f"{m}@{k}" for k in ks for m in PER_K_METRICS] + [f"{m}@{max(ks)}" for m in LARGEST_K_METRICS]
    return [c for c in wanted if c in first]


def metric_cell(r: dict, col: str, segment: str | None = None, convention: str | None = None) -> str:
    """A result's test ``col`` (of a ``segment`` or a history ``convention``) with ± std when known."""
    if convention is not None:
        value = r.get("conventions", {}).get(convention, {}).get("test", {}).get(col)
        std = r.get("conventions_std", {}).get(convention, {}).get("test", {}).get(col)
    elif segment is None:
        value, std = r["test"].get(col), r.get("std", {}).get("test", {}).get(col)
    else:
        value = r.get("segments", {}).get(segment, {}).get(col)
        std = r.get("segments_std", {}).get(segment, {}).get(col)
    if value is None:
        return ""
    return f"{value:.4f} ± {std:.4f}" if std is not None else f"{value:.4f}"


def _table(results: dict[str, Any], cols: list[str], cell, fit: bool) -> str:
    """One row per model: ``cell(result, column)`` per column, then the fit seconds when ``fit``."""
    head = ["model", *cols, *(["fit s"] if fit else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name, r in results.items():
        cells = [name, *(cell(r, c) for c in cols), *([f"{r['fit_seconds']:.1f}"] if fit else [])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _figure(value: Any) -> bool:
    """Whether a per-seed value is a figure to pair (not missing, not NaN)."""
    return value is not None and not math.isnan(value)


def paired_against(results: dict[str, Any], metric: str, reference: str) -> dict[str, Any]:
    """A paired t-test over seeds of test ``metric`` of every other model against ``reference`` (seeds
    pair up by number, so with split seeds a pair shares the split too); models with fewer than two
    seeds in common with it are left out."""
    from clarec.evaluate.stats import paired_t_test

    runs = {k: {r["seed"]: r["test"].get(metric) for r in v.get("per_seed", [])} for k, v in results.items()}
    tests = {}
    for name, values in runs.items():
        ref = runs[reference]
        seeds = [s for s in sorted(set(values) & set(ref)) if _figure(values[s]) and _figure(ref[s])]
        if name != reference and len(seeds) >= 2:
            tests[name] = paired_t_test([values[s] for s in seeds], [ref[s] for s in seeds])
    return tests


def sample_note(ev, first: dict) -> str:
    """What ``evaluation.user_sample`` did: a sample of the test users, or every user where there
    were no more than the sample's size (nothing drawn, no intervals)."""
    if first.get("test_sample"):
        return (
            f"Scored on a random sample of {ev.user_sample} users (seed {ev.sample_seed}) where more have "
            "items in the part; 95% confidence intervals in results.json (`test_ci95`)"
        )
    return f"Every user scored: no more than the sample's {ev.user_sample} have items in the test part"


def paired_against_best(results: dict[str, Any], metric: str) -> tuple[str, dict[str, Any]]:
    """The model with the best mean **validation** ``metric`` and :func:`paired_against` it (on test).

    The reference is chosen on validation, as every other choice: picking the best test mean and then
    testing the others against it would select on the figures being tested. Runs without validation
    figures (an external file scored by ``clarec evaluate``) fall back to the test mean."""

    def chosen_on(part: str):
        return lambda k: results[k].get(part, {}).get(metric, float("-inf"))

    has_valid = any(metric in r.get("valid", {}) for r in results.values())
    best = max(results, key=chosen_on("valid" if has_valid else "test"))
    return best, paired_against(results, metric, best)


def holm_adjusted(tests: dict[str, Any]) -> dict[str, float]:
    """Holm-adjusted p-values of the tests that had a spread to test (a difference that is the same
    on every seed is said, not tested): every model is tested against the same reference at once."""
    from clarec.evaluate.stats import holm

    spread = {name: t for name, t in tests.items() if t.ci_low < t.ci_high}
    return dict(zip(spread, (float(p) for p in holm([t.p_value for t in spread.values()])), strict=True))


def significance_lines(results: dict[str, Any], metric: str) -> str:
    """:func:`paired_against_best` as markdown lines, or '' when no model has two seeds to pair."""
    best, tests = paired_against_best(results, metric)
    adjusted = holm_adjusted(tests)
    lines = [
        f"- {name} − {best}: {t.mean_diff:+.4f} (p = {t.p_value:.2g}, Holm {adjusted[name]:.2g}; 95% "
        f"t interval [{t.ci_low:.4f}, {t.ci_high:.4f}], {t.n} seeds)"
        if name in adjusted
        else f"- {name} − {best}: {t.mean_diff:+.4f}, the same on each of {t.n} seeds (e.g. deterministic "
        "models on one split): no spread to test"
        for name, t in tests.items()
    ]
    head = (
        f"\nPaired t-tests of test {metric} over seeds against the best validation mean ({best}); Holm: "
        "the p-value adjusted for testing every model at once (compare it with 0.05):\n\n"
    )
    return head + "\n".join(lines) + "\n" if lines else ""


def cost_lines(results: dict[str, Any]) -> str:
    """What the evaluation cost models that count it (``eval_cost`` in results.json, validation and
    test together, summed over seeds: ``llm-rerank``'s prompts, seconds and answer tokens); a
    cached answer costs no prompt, so the seconds per prompt are what a user not seen before costs."""
    lines = []
    for name, r in results.items():
        cost = r.get("eval_cost")
        if not cost or not cost.get("users"):
            continue
        line = (
            f"- {name}: {cost['users']} users scored (validation and test), {cost['prompts']} prompts "
            f"generated ({cost['fallbacks']} answers unusable)"
        )
        if cost["prompts"]:
            line += f"; {cost['seconds'] / cost['prompts']:.2f} s per generated prompt"
        if cost.get("tokens") is not None and cost.get("answers"):
            line += f"; {cost['tokens'] / cost['answers']:.1f} tokens per answer (cached ones included)"
        lines.append(line)
    head = "\nInference cost of the evaluation (all seeds; a cached answer is not generated again):\n\n"
    return head + "\n".join(lines) + "\n" if lines else ""


def chosen_lines(results: dict[str, Any]) -> str:
    """What each fit chose on validation (``chosen`` in results.json: a blend's weights), seed by seed."""
    lines = []
    for name, r in results.items():
        runs = r.get("per_seed") or [r]
        picks = [(run.get("seed"), run["chosen"]) for run in runs if run.get("chosen")]
        if picks:
            shown = "; ".join(
                ", ".join(f"{k} {_shown(v)}" for k, v in chosen.items()) + f" (seed {seed})"
                for seed, chosen in picks
            )
            lines.append(f"- {name}: {shown}")
    head = "\nChosen on validation within each fit:\n\n"
    return head + "\n".join(lines) + "\n" if lines else ""


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " / ".join(_shown(v) for v in value)
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def segments_table(results: dict[str, Any], ks: list[int], segments: dict[str, str] = COLD_SEGMENTS) -> str:
    """Markdown table of ``segments`` (recall and NDCG per K), or '' when a run has none of them."""
    present = [s for s in segments if any(s in r.get("segments", {}) for r in results.values())]
    if not present:
        return ""
    cols = [(s, f"{m}@{k}") for s in present for k in ks for m in PER_K_METRICS]
    head = ["model", *(f"{c} ({s})" for s, c in cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|"]
    for name, r in results.items():
        lines.append("| " + " | ".join([name, *(metric_cell(r, c, s) for s, c in cols)]) + " |")
    users = {
        s: next(r["segments"][s]["users"] for r in results.values() if s in r.get("segments", {}))
        for s in present
    }
    notes = "; ".join(f"{s}: {segments[s]} ({users[s]:.0f} users)" for s in present)
    return "\n".join(lines) + f"\n\nSegments — {notes}.\n"


def results_table(
    results: dict[str, Any], cfg=None, command_note: str | None = None, ks: list[int] | None = None
) -> str:
    """Markdown table: one row per model, test metrics (mean ± std over seeds when several)."""
    if not results:
        return "(no results)\n"
    if ks is None:
        ks = list(cfg.evaluation.ks) if cfg is not None else [10, 20]
    cols = table_columns(results, ks)
    text = _table(results, cols, lambda r, c: metric_cell(r, c), fit=True)
    for convention in next(iter(results.values())).get("conventions", {}):
        table = _table(
            results, cols, lambda r, c, conv=convention: metric_cell(r, c, convention=conv), fit=False
        )
        text += f"\nHistory items {convention}:\n\n{table}"
    for segments in (segments_table(results, ks), segments_table(results, [max(ks)], TAIL_SEGMENTS)):
        if segments:
            text += "\n" + segments
    text += cost_lines(results) + chosen_lines(results)
    if cfg is not None:
        tests = significance_lines(results, cfg.evaluation.main_metric)
        if not tests and len(results) > 1:  # said, not silently left out
            tests = "\nNo paired tests: each model has one seed (run with --seeds 2 or more to test them).\n"
        text += tests
    if cfg is not None:
        first = next(iter(results.values()))
        seeds = first.get("seeds")
        drawn = " (each draws the split too)" if first.get("split_seeds") else ""
        note = f"Test split; full ranking over all items; seeds{drawn}: {seeds if seeds else [cfg.seed]}."
        ev = cfg.evaluation
        note += f" History items {ev.history_items[0]} (main table)"
        if ev.test_input == "train+valid":
            note += "; models that score a history exactly read the validation item when tested"
        note += "."
        if ev.user_sample:
            note += " " + sample_note(ev, first) + "."
        found = first.get("test_unreachable")  # under masked, the main table or another one
        if found:
            from clarec.evaluate.evaluator import unreachable_note

            where = f" (split of seed {seeds[0]})" if first.get("split_seeds") else ""
            note += f" Note{where}: {unreachable_note(found)}."
        text = f"# {cfg.name}\n\n{note}\n\n{text}"
    if command_note:
        text += f"\nCommand: `{command_note}`\n"
    return text
