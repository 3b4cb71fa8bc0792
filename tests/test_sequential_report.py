"""benchmarks/sequential.py's tables (segments: mean ± std over seeds of each segment the records hold,
new items first, a blank cell where a model's runs lack a segment; paired tests) and the RecBole
comparison's (a row per clarec entry compared, then RecBole's; a finished RecBole seed kept as a
record)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
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


def test_pairs_are_tested_over_their_common_seeds_under_each_convention():
    seq = load_benchmark("sequential")

    def result(masked: float, kept: float) -> dict:
        return {"test": {"ndcg@20": masked}, "conventions": {"kept": {"test": {"ndcg@20": kept}}}}

    found = {
        "text-seq": {2024: result(0.044, 0.037), 2025: result(0.045, 0.038), 2026: result(0.046, 0.038)},
        "text-seq-transfer": {2024: result(0.045, 0.038), 2025: result(0.047, 0.038)},
        "sasrec": {2024: result(0.057, 0.044)},
    }
    lines = seq.paired_lines(found, "text-seq-transfer", "text-seq", ["masked", "kept"], "masked")
    assert [line.split(":")[0] for line in lines] == [
        "- text-seq-transfer − text-seq, history items masked",
        "- text-seq-transfer − text-seq, history items kept",
    ]
    assert "+0.0015 NDCG@20" in lines[0] and "seeds [2024, 2025])" in lines[0]  # 2026: one side only
    assert "+0.0005 NDCG@20" in lines[1]
    assert seq.paired_lines(found, "sasrec", "text-seq", ["masked"], "masked") == []  # one common seed


def test_recbole_comparison_has_a_row_per_clarec_entry_and_recbole():
    peer = load_benchmark("peers/recbole_sasrec")

    def conv(ndcg: float) -> dict:
        return {m: ndcg for m in peer.SHOWN}

    def run(masked: float, kept: float) -> dict:
        return {"masked": conv(masked), "kept": conv(kept)}

    acc = {
        "clarec": {
            "sasrec": {2024: run(0.057, 0.044), 2025: run(0.059, 0.046)},
            "sasrec-prefixes": {2024: run(0.06, 0.05)},
        },
        "recbole": {2024: run(0.055, 0.043) | {"epochs": 90, "seconds": 7200.0}},
        "command": "cmd",
    }
    speed = {
        "clarec": {"sasrec": [10.0, 12.0, 30.0], "sasrec-prefixes": [40.0]},
        "recbole": [200.0],
        "command": "c",
    }
    text = peer.render(
        {"machine": "m", "accuracy": acc, "speed": speed}, type("Cfg", (), {"name": "beauty-seq"})
    )
    assert "| sasrec | 12.0 | 200.0 | 0.06× |" in text  # medians
    assert "| sasrec-prefixes | 40.0 | 200.0 | 0.20× |" in text
    masked = text.split("## Test, history items masked")[1].split("## Test, history items kept")[0]
    rows = [line for line in masked.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == [
        "| clarec sasrec | 2024, 2025 | " + " | ".join(["0.0580 ± 0.0014"] * 4) + " |",
        "| clarec sasrec-prefixes | 2024 | " + " | ".join(["0.0600"] * 4) + " |",
        "| RecBole SASRec | 2024 | " + " | ".join(["0.0550"] * 4) + " |",
    ]
    assert "seed 2024: 90 epochs, 2.0 h" in text
    assert "− RecBole" not in text  # one RecBole seed: no spread to compare with


def test_clarec_is_compared_with_the_spread_of_recboles_seeds():
    peer = load_benchmark("peers/recbole_sasrec")

    def run(ndcg: float) -> dict:
        return {
            c: {m: (2 if m.startswith("hit") else 1) * ndcg for m in peer.SHOWN} for c in peer.CONVENTIONS
        }

    acc = {
        "clarec": {"sasrec": {2024: run(0.056), 2025: run(0.060)}, "sasrec-prefixes": {2024: run(0.07)}},
        "recbole": {2024: run(0.055), 2025: run(0.057), 2026: run(0.059)},
    }

    def p_value(line: str) -> float:
        return float(line.rsplit("p = ", 1)[1].rstrip(")"))

    (line,) = peer.versus_recbole(acc, "masked")  # sasrec-prefixes has one seed: no line
    assert line.startswith(
        "- clarec sasrec − RecBole, ndcg@20: +0.0010 (RecBole's seeds 0.0550–0.0590, std 0.0020: "
        "clarec's mean inside that range; Welch's t-test p = "
    )
    assert p_value(line) == 0.71  # Welch's 0.714, printed to two digits (Student's t-test: 0.668)
    acc["clarec"]["sasrec"] = {2024: run(0.066), 2025: run(0.068)}
    (line,) = peer.versus_recbole(acc, "kept", "hit@20")
    assert line.startswith("- clarec sasrec − RecBole, hit@20: +0.0200 (RecBole's seeds 0.1100–0.1180")
    assert "outside that range" in line
    assert p_value(line) == 0.0082  # Welch's 0.00819 (Student's t-test: 0.00927)
    for r in acc["recbole"].values():
        r |= {"epochs": 60, "seconds": 3600.0}
    text = peer.render({"machine": "m", "accuracy": acc | {"command": "c"}}, type("Cfg", (), {"name": "b"}))
    kept = text.split("## Test, history items kept")[1]
    assert line in kept and "- clarec sasrec − RecBole, ndcg@20: +0.0100" in kept
    acc["recbole"] = {2024: run(0.055)}
    assert peer.versus_recbole(acc, "masked") == []


def test_a_finished_recbole_seed_is_recorded_and_then_read_back_without_its_run_folder(tmp_path, monkeypatch):
    peer = load_benchmark("peers/recbole_sasrec")
    split = tmp_path / "split"
    split.mkdir()
    (split / "train.tsv").write_text("user_id\titem_id\na\tx1\na\tx2\nb\tx2\nb\tx4\n")
    (split / "valid.tsv").write_text("user_id\titem_id\na\tx5\nb\tx3\n")
    (split / "test.tsv").write_text("user_id\titem_id\na\tx3\nb\tx1\n")
    trained = []

    def fake_recbole(split_dir, out, seed, threads, epochs, timing=False):
        trained.append(seed)
        out.mkdir(parents=True)
        # a: x1 is a history item, x3 the target: 2nd as given, 1st once the history is masked
        (out / "recs.tsv").write_text("user_id\titem_id\trank\na\tx1\t1\na\tx3\t2\nb\tx5\t1\nb\tx4\t2\n")
        return {"epochs_run": 12, "fit_seconds": 3600.0}

    monkeypatch.setattr(peer, "recbole", fake_recbole)
    raw = {"name": "toy-seq", "data": {"name": "toy"}, "split": {"method": "leave_one_out"}, "evaluation": {}}
    records = tmp_path / "records"
    first = peer.recbole_seed(raw, split, tmp_path / "runs" / "recbole-7", 7, 1, 200, records)
    assert trained == [7]
    assert first["masked"]["hit@10"] == 0.5 and first["masked"]["ndcg@10"] == 0.5  # a at rank 1, b missed
    assert first["kept"]["ndcg@10"] == pytest.approx(0.5 / np.log2(3))  # a at rank 2
    assert (first["epochs"], first["seconds"]) == (12, 3600.0)
    assert (records / "toy-seq" / "recbole-7.json").is_file()

    shutil.rmtree(tmp_path / "runs")  # the run folder is gone (a new machine): the record stands
    assert peer.recbole_seed(raw, split, tmp_path / "runs" / "recbole-7", 7, 1, 200, records) == first
    assert trained == [7]
    # another split, or other RecBole settings: the record is stale and the seed runs again
    other = raw | {"split": {"method": "leave_one_out", "valid_as_input": False}}
    peer.recbole_seed(other, split, tmp_path / "runs" / "recbole-7", 7, 1, 200, records)
    shutil.rmtree(tmp_path / "runs")
    peer.recbole_seed(other, split, tmp_path / "runs" / "recbole-7", 7, 1, 100, records)
    assert trained == [7, 7, 7]


def test_the_speed_figures_are_kept_as_a_record_and_drawn_from_it_by_an_accuracy_only_run(tmp_path):
    peer = load_benchmark("peers/recbole_sasrec")
    raw = {
        "name": "toy-seq",
        "data": {"name": "toy"},
        "split": {"method": "leave_one_out"},
        "models": [{"name": "sasrec", "params": {"lr": 0.001}}, {"name": "sasrec", "label": "other"}],
    }
    measured = {"clarec": {"sasrec": [10.0]}, "recbole": [100.0]}
    assert peer.speed_phase(raw, ["sasrec"], 1, tmp_path, None) is None  # nothing measured yet
    speed = peer.speed_phase(raw, ["sasrec"], 1, tmp_path, lambda: measured)
    assert speed["clarec"] == measured["clarec"] and {"command", "machine"} <= set(speed)
    assert (tmp_path / "toy-seq" / "speed.json").is_file()
    assert peer.speed_phase(raw, ["sasrec"], 1, tmp_path, None) == speed  # an accuracy-only run
    # other threads, another timed entry's settings: not these figures
    assert peer.speed_phase(raw, ["sasrec"], 2, tmp_path, None) is None
    edited = raw | {"models": [{"name": "sasrec", "params": {"lr": 0.002}}]}
    assert peer.speed_phase(edited, ["sasrec"], 1, tmp_path, None) is None
    assert peer.speed_phase(raw, ["sasrec", "other"], 1, tmp_path, None) is None
    text = peer.render(
        {"machine": "here", "speed": speed | {"machine": "box"}}, type("Cfg", (), {"name": "t"})
    )
    assert "| sasrec | 10.0 | 100.0 | 0.10× |" in text and "Machine (speed): box." in text
