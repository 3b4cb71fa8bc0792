"""``clarec report RUN_DIR``: one self-contained HTML page of a run (no network, figures inline SVG).

What a reader needs to judge the numbers, in order: the protocol (data, split, candidates, what is
excluded, what the models read when tested, seeds), the test metrics with ± over seeds and a mark
where a model differs from the best with p < 0.05 (paired t-test over seeds), accuracy against
coverage and novelty, the segments (cold items, users by activity, items by popularity), the other history convention,
and each model's training curve (loss and validation metric per epoch, the chosen epoch marked; the
learnable or scheduled temperatures and loss weights per epoch where the model has them).
"""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path
from typing import Any

from clarec.config import load_config
from clarec.errors import ClarecError
from clarec.evaluate.evaluator import unreachable_note
from clarec.experiment.report import (
    holm_adjusted,
    metric_cell,
    paired_against_best,
    sample_note,
    table_columns,
)

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}.best{font-weight:bold}
.fig{display:inline-block;margin:.5rem}.note{color:#555;font-size:.9rem}
"""


def _figure(draw, width: float = 5.0, height: float = 3.4) -> str:
    """An inline SVG of what ``draw(ax)`` plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # labels are model names and keys as written: "$" is text, never mathtext (a lone "$" crashed)
    with matplotlib.rc_context({"text.parse_math": False}):
        fig, ax = plt.subplots(figsize=(width, height))
        try:
            draw(ax)
            fig.tight_layout()
            buf = io.StringIO()
            fig.savefig(buf, format="svg")
        finally:
            plt.close(fig)
    svg = re.sub(r"<metadata>.*?</metadata>", "", buf.getvalue(), flags=re.S)  # creator, date
    return '<div class="fig">' + svg[svg.index("<svg") :] + "</div>"


def _table(head: list[str], rows: list[list[str]], classes: list[list[str]] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r, row in enumerate(rows):
        cls = classes[r] if classes else [""] * len(row)
        out.append(
            "<tr>"
            + "".join(f'<td class="{c}">{html.escape(v)}</td>' for v, c in zip(row, cls, strict=True))
            + "</tr>"
        )
    return "".join(out) + "</table>"


def _protocol(cfg, data: dict, results: dict) -> str:
    split = data.get("split", {})
    first = next(iter(results.values()))
    seeds = first.get("seeds") or [cfg.seed]
    ev = cfg.evaluation
    items = split.get("items", "?")
    lines = [
        f"Data: {html.escape(str(cfg.data or {'split': 'predefined'}))}; {split.get('users', '?')} users, "
        f"{items} items; train / valid / test interactions {split.get('train')} / {split.get('valid')} / {split.get('test')}.",
        f"Split: {html.escape(cfg.split.method)} {html.escape(json.dumps(cfg.split.params()))}"
        + (f"; {split.get('cold_items')} cold items" if split.get("cold_items") else "")
        + ".",
        f"Candidates: every one of the {items} items is ranked (full ranking, no sampled negatives).",
        "Excluded from each ranking: "
        + (
            "the user's training items (and validation items when testing)"
            if ev.history_items[0] == "masked"
            else "nothing (history items kept as candidates)"
        )
        + f"; main table: history items {ev.history_items[0]}.",
        "When testing, models read: "
        + (
            "the training and validation items in time order (models that score a history exactly)"
            if ev.test_input == "train+valid"
            else "their training users"
        )
        + ".",
        f"Seeds: {seeds}"
        + (" (each drew the split too)" if first.get("split_seeds") else " (model seeds, one split)")
        + ".",
    ]
    if ev.user_sample:
        lines.append(html.escape(sample_note(ev, first)) + ".")
    if first.get("test_unreachable"):  # counted under masked, whichever table that is
        lines.append(html.escape(f"Note: {unreachable_note(first['test_unreachable'])}."))
    return "<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"


def _curves(run: Path, key: str, result: dict, metric_name: str) -> str:
    """The training curve of the first seed of ``result`` (not another run's leftover seed folder)."""
    seeds = result.get("seeds") or [result.get("seed")]
    histories = [run / "train" / key / f"seed-{seeds[0]}" / "history.json"]
    if seeds[0] is None or not histories[0].is_file():
        return ""
    try:
        h = json.loads(histories[0].read_text())
    except (OSError, ValueError):  # a stopped run's half-written history
        h = None
    if not isinstance(h, dict) or not {"epochs", "losses", "val_metrics"} <= h.keys():
        where = html.escape(str(histories[0].relative_to(run)))
        return f"<p>{html.escape(key)}: no training curve ({where} is not readable).</p>"

    def draw(ax):
        ax.plot(h["epochs"], h["losses"], color="tab:blue", label="training loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss", color="tab:blue")
        points = [(e, v) for e, v in zip(h["epochs"], h["val_metrics"], strict=True) if v is not None]
        if points:
            twin = ax.twinx()
            twin.plot(*zip(*points, strict=True), color="tab:orange", marker=".", label=h.get("metric_name"))
            twin.set_ylabel(f"validation {h.get('metric_name', metric_name)}", color="tab:orange")
            if h.get("best_epoch"):
                twin.axvline(h["best_epoch"], color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"{key} ({histories[0].parent.name}): best epoch {h.get('best_epoch')}")

    def draw_traces(ax):
        for name, values in h["traces"].items():
            ax.plot(h["epochs"][: len(values)], values, marker=".", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("value at the epoch's end")
        ax.legend(fontsize="small")
        ax.set_title(f"{key}: temperature and loss weights")

    return _figure(draw) + (_figure(draw_traces) if h.get("traces") else "")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` for a run folder written by ``clarec run`` (or ``clarec tune``'s
    ``final``); returns its path."""
    run = Path(run_dir)
    if not (run / "results.json").is_file() or not (run / "config.yaml").is_file():
        raise ClarecError(f"{run}: not a run folder (results.json and config.yaml are written by clarec run)")
    cfg = load_config(run / "config.yaml")
    try:
        results: dict[str, Any] = json.loads((run / "results.json").read_text())
        data = json.loads((run / "data.json").read_text()) if (run / "data.json").is_file() else {}
    except (OSError, ValueError) as e:
        raise ClarecError(f"{run}: results.json or data.json is not readable JSON ({e})") from None
    if (
        not isinstance(results, dict)
        or not results
        or not all(isinstance(r, dict) and isinstance(r.get("test"), dict) for r in results.values())
    ):
        raise ClarecError(f"{run}: results.json does not hold clarec run results (a model → figures mapping)")
    main = cfg.evaluation.main_metric
    k = max(cfg.evaluation.ks)
    first = next(iter(results.values()))
    metrics = table_columns(results, list(cfg.evaluation.ks))  # the columns of results.md
    best, tests = paired_against_best(results, main)
    adjusted = holm_adjusted(tests)

    rows, classes = [], []
    for name, r in results.items():
        if name in tests and name not in adjusted:  # the same difference on every seed: said, not tested
            mark = " =" if tests[name].mean_diff == 0 else " †"
        else:
            mark = " *" if adjusted.get(name, 1.0) < 0.05 else ""
        rows.append([name + mark, *(metric_cell(r, m) for m in metrics), f"{r.get('fit_seconds', 0):.1f}"])
        classes.append(["best" if name == best else "", *([""] * len(metrics)), ""])
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>clarec report: {html.escape(cfg.name)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(cfg.name)}</h1>",
        "<h2>Protocol</h2>",
        _protocol(cfg, data, results),
        f"<h2>Test metrics (mean ± std over seeds)</h2>{_table(['model', *metrics, 'fit s'], rows, classes)}",
        f"<p class='note'>Bold: the best validation mean {main} (the reference is chosen on validation). "
        "*: differs from it on test with p &lt; 0.05 after Holm's adjustment for testing every model "
        "(paired t-tests over seeds; needs two seeds or more). †: differs from it by the same amount "
        "on every seed (e.g. deterministic models on one split), so no test applies; =: the same test figure as it on "
        "every seed.</p>",
    ]
    for convention in first.get("conventions", {}):
        conv_rows = [
            [n, *(metric_cell(r, m, convention=convention) for m in metrics)] for n, r in results.items()
        ]
        parts.append(
            f"<h2>Test metrics, history items {html.escape(convention)}</h2>{_table(['model', *metrics], conv_rows)}"
        )

    figures = []
    for other in (f"coverage@{k}", f"novelty@{k}", f"diversity@{k}"):
        if other in first["test"] and main in first["test"]:

            def draw(ax, other=other):
                for name, r in results.items():
                    ax.scatter(r["test"][other], r["test"][main])
                    ax.annotate(name, (r["test"][other], r["test"][main]), fontsize=8)
                ax.set_xlabel(other)
                ax.set_ylabel(main)
                ax.set_title(f"accuracy vs {other.split('@')[0]}")

            figures.append(_figure(draw))
    if figures:
        parts.append("<h2>Accuracy against beyond-accuracy</h2>" + "".join(figures))

    segment_names = sorted({s for r in results.values() for s in r.get("segments", {})})
    if segment_names:
        seg_rows = [
            [
                name,
                *(metric_cell(r, main, segment=s) for s in segment_names),
            ]
            for name, r in results.items()
        ]
        users = {
            s: next(r["segments"][s].get("users") for r in results.values() if s in r.get("segments", {}))
            for s in segment_names
        }
        head = ["model", *(f"{s} ({users[s]:.0f} users)" for s in segment_names)]
        parts.append(f"<h2>Test {main} by segment</h2>{_table(head, seg_rows)}")
        parts.append(
            "<p class='note'>cold_items: items without training interactions, ranked in the whole catalogue; "
            "cold_only: ranked among cold items only; activity_q1..q4: users by number of training "
            "interactions, least active first; items_head / items_mid / items_tail: only the test items in "
            "each third of the training interactions by item popularity (head: the few most popular "
            "items; tail: the long tail, unseen items included).</p>"
        )

    curves = [_curves(run, name, result, main) for name, result in results.items()]
    if any(curves):
        parts.append("<h2>Training curves (first seed)</h2>" + "".join(curves))
    parts.append("</body></html>")
    path = Path(out) if out else run / "report.html"
    if path.is_dir():
        raise ClarecError(f"{path} is a folder: give the report's file path (e.g. {path / 'report.html'})")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
