"""benchmarks/sequential.py's segment table: mean ± std over seeds of each segment the records hold,
new items first, a blank cell where a model's runs lack a segment."""

from __future__ import annotations

from factories import load_benchmark


def _run(cold_only: float, tail: float, with_cold: bool = True) -> dict:
    segments = {"items_tail": {"ndcg@20": tail, "hit@20": 2 * tail}}
    if with_cold:
        segments["cold_only"] = {"ndcg@20": cold_only, "hit@20": 2 * cold_only}
    return {"segments": segments}


def test_segments_are_averaged_over_seeds_new_items_first():
    seq = load_benchmark("sequential")
    found = {
        "text-seq": {2024: _run(0.10, 0.01), 2025: _run(0.12, 0.03)},
        "sasrec": {2024: _run(0.0, 0.02, with_cold=False)},
    }
    lines = seq.segment_table(["sasrec", "text-seq", "bert4rec"], found, "masked")
    assert lines[1] == "## Test by segment, history items masked: NDCG@20 / HR@20"
    header, rows = lines[5], lines[7:]
    assert header == "| model | cold_only | items_tail |"
    assert rows == [
        "| sasrec |  | 0.0200 / 0.0400 |",  # one seed: no ±; no cold items in its runs: blank
        "| text-seq | 0.1100 ± 0.0141 / 0.2200 ± 0.0283 | 0.0200 ± 0.0141 / 0.0400 ± 0.0283 |",
    ]


def test_no_segments_no_table():
    seq = load_benchmark("sequential")
    assert seq.segment_table(["sasrec"], {"sasrec": {2024: {"segments": {}}}}, "kept") == []
