"""Scoring a recommendation file against a predefined split folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clarec.errors import ClarecError, DataError
from clarec.evaluate.external import evaluate_recommendation_file


def write_split(folder: Path) -> Path:
    """Users a, b, c; items x1..x5. Test: a -> {x3, x4}, b -> {x1}, c has no test item."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text("user_id\titem_id\na\tx1\na\tx2\nb\tx2\nc\tx1\nc\tx5\n")
    (folder / "valid.tsv").write_text("user_id\titem_id\nb\tx3\n")
    (folder / "test.tsv").write_text("user_id\titem_id\na\tx3\na\tx4\nb\tx1\n")
    return folder


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_scores_file_as_given(tmp_path):
    split = write_split(tmp_path / "split")
    # a: x1 (train item, counted non-relevant), x3 (hit at rank 2); b: x1 at rank 1; c: ignored (no test items).
    recs = write(tmp_path / "recs.tsv", "user_id\titem_id\trank\na\tx1\t1\na\tx3\t2\nb\tx1\t1\nc\tx2\t1\n")
    got = evaluate_recommendation_file(split, recs, ks=(1, 2))
    # a@1: no hit; b@1: hit -> recall@1 = (0 + 1)/2.
    assert got["recall@1"] == pytest.approx(0.5)
    # a@2: 1 of 2 relevant; b@2: 1 of 1 -> (0.5 + 1)/2.
    assert got["recall@2"] == pytest.approx(0.75)
    # a@2: DCG = 1/log2(3), ideal = 1 + 1/log2(3); b: 1.
    a_ndcg = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert got["ndcg@2"] == pytest.approx((a_ndcg + 1) / 2)
    assert got["mrr@2"] == pytest.approx((0.5 + 1) / 2)
    # Lists of scored users at 2: {x1, x3} and {x1} -> 2 of 5 items.
    assert got["coverage@2"] == pytest.approx(2 / 5)
    assert json.loads(json.dumps(got)) == got
    assert all(k == k.lower() for k in got)


def test_a_gzipped_file_scores_as_its_text_and_a_broken_one_is_refused(tmp_path):
    import gzip

    split = write_split(tmp_path / "split")
    text = "user_id\titem_id\trank\na\tx1\t1\na\tx3\t2\nb\tx1\t1\n"
    plain = evaluate_recommendation_file(split, write(tmp_path / "recs.tsv", text), ks=(1, 2))
    packed = tmp_path / "recs.tsv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert evaluate_recommendation_file(split, packed, ks=(1, 2)) == plain
    cut = tmp_path / "cut.tsv.gz"
    cut.write_bytes(packed.read_bytes()[:-10])  # a transfer broken off
    with pytest.raises(DataError, match="not a complete gzip file"):
        evaluate_recommendation_file(split, cut)
    (tmp_path / "plain.gz").write_text(text)
    with pytest.raises(DataError, match="not a complete gzip file"):
        evaluate_recommendation_file(split, tmp_path / "plain.gz")


def test_header_optional_blank_lines_gaps_and_missing_users(tmp_path):
    split = write_split(tmp_path / "split")
    # No header, a blank line, user a has rank 3 only (slots 1-2 empty), user b missing -> scores 0.
    recs = write(tmp_path / "recs.tsv", "a\tx3\t3\n\n")
    got = evaluate_recommendation_file(split, recs, ks=(2, 3))
    assert got["hit@2"] == 0.0
    assert got["hit@3"] == pytest.approx(0.5)  # a hits at rank 3, b has no list
    assert got["mrr@3"] == pytest.approx((1 / 3) / 2)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("user_id\titem_id\trank\na\tx1\t1\nzz\tx1\t1\n", 3, "unknown user id 'zz'"),
        ("a\tx1\t1\na\tnope\t2\n", 2, "unknown item id 'nope'"),
        ("a\tx1\t1\na\tx2\t1\n", 2, "rank 1 given twice for user 'a'"),
        ("a\tx1\t1\na\tx1\t2\n", 2, "item 'x1' given twice for user 'a'"),
        ("a\tx1\t1\na\tx2\ttwo\n", 2, "rank must be a positive integer, got 'two'"),
        ("a\tx1\t0\n", 1, "rank must be a positive integer"),
        ("a\tx1\t1.5\n", 1, "rank must be a positive integer"),
        ("a\tx1\tinf\n", 1, "rank must be a positive integer, got 'inf'"),
        ("a\tx1\t1\na x2 2\n", 2, "expected 3 tab-separated fields"),
        ("a\tx1\t1\na\tx2\t99999999999999999999\n", 2, "is beyond the catalogue's"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, text, line, reason):
    import warnings

    split = write_split(tmp_path / "split")
    recs = write(tmp_path / "recs.tsv", text)
    with pytest.raises(DataError) as err, warnings.catch_warnings():
        warnings.simplefilter("error")  # one error, no numpy warning printed before it
        evaluate_recommendation_file(split, recs)
    assert err.value.line == line
    assert reason in str(err.value)
    assert str(err.value).startswith(f"{recs}:{line}: ")


def test_unknown_ids_ignored_with_warning_when_not_strict(tmp_path):
    split = write_split(tmp_path / "split")
    recs = write(tmp_path / "recs.tsv", "zz\tx1\t1\nb\tx1\t1\na\tnope\t1\n")
    with pytest.warns(UserWarning, match=r"ignored 2 line\(s\).*line 1"):
        got = evaluate_recommendation_file(split, recs, ks=(1,), strict=False)
    assert got["hit@1"] == pytest.approx(0.5)


def test_missing_and_empty_files(tmp_path):
    split = write_split(tmp_path / "split")
    with pytest.raises(DataError, match="not found"):
        evaluate_recommendation_file(split, tmp_path / "none.tsv")
    with pytest.raises(DataError, match="no recommendations"):
        evaluate_recommendation_file(split, write(tmp_path / "e.tsv", "user_id\titem_id\trank\n"))
    (tmp_path / "bin.tsv").write_bytes(b"a\t\xff\t1\n")
    with pytest.raises(DataError, match="UTF-8"):
        evaluate_recommendation_file(split, tmp_path / "bin.tsv")


def test_masked_history_items_leave_the_list_and_the_rest_moves_up(tmp_path):
    split = write_split(tmp_path / "split")
    # a: x1, x2 are training items: masked, x3 (rank 3 as given) becomes rank 1; b: x3 is b's
    # validation item, masked too, so x1 moves to rank 1
    recs = write(
        tmp_path / "recs.tsv", "a\tx1\t1\na\tx2\t2\na\tx3\t3\na\tx4\t4\nb\tx3\t1\nb\tx1\t2\nb\tx2\t3\n"
    )
    kept = evaluate_recommendation_file(split, recs, ks=(1, 2))
    masked = evaluate_recommendation_file(split, recs, ks=(1, 2), history_items="masked")
    assert kept["hit@2"] == pytest.approx(0.5) and kept["hit@1"] == 0.0
    assert masked["hit@1"] == 1.0 and masked["recall@2"] == 1.0
    with pytest.raises(ClarecError, match="history_items"):
        evaluate_recommendation_file(split, recs, history_items="hidden")


def test_masked_warns_about_targets_already_in_the_history(tmp_path):
    import warnings

    split = write_split(tmp_path / "split")
    recs = write(tmp_path / "recs.tsv", "a\tx3\t1\nb\tx1\t1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no repeat in this split: nothing to say
        evaluate_recommendation_file(split, recs, ks=(1,), history_items="masked")
    # b bought x2 again: its test item is a training item, which masking removes from every list
    (split / "test.tsv").write_text("user_id\titem_id\na\tx3\na\tx4\nb\tx2\n")
    with pytest.warns(UserWarning, match=r"1 of 3 test targets \(33%\).*1 of 2 users"):
        got = evaluate_recommendation_file(split, recs, ks=(1,), history_items="masked")
    assert got["hit@1"] == 0.5  # a: x3 at rank 1; b can never be hit


def test_mask_history_keeps_order_and_pads():
    import numpy as np
    import scipy.sparse as sp

    from clarec.evaluate.external import mask_history

    history = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    got = mask_history(np.array([[1, 4, 3, 0], [2, -1, -1, -1]]), history)
    np.testing.assert_array_equal(got, [[4, 0, -1, -1], [2, -1, -1, -1]])
    # a missing rank is an empty slot under both conventions: [gap, 4, 1(seen), 0] -> [gap, 4, 0]
    got = mask_history(np.array([[-1, 4, 1, 0], [-1, 2, -1, -1]]), history)
    np.testing.assert_array_equal(got, [[-1, 4, 0, -1], [-1, 2, -1, -1]])


def test_a_byte_order_mark_and_a_score_field_are_read(tmp_path):
    split = write_split(tmp_path / "split")
    plain = evaluate_recommendation_file(split, write(tmp_path / "a.tsv", "a\tx1\t1\n"))
    marked = write(tmp_path / "b.tsv", "\ufeffuser_id\titem_id\trank\tscore\na\tx1\t1\t0.5\n")
    assert evaluate_recommendation_file(split, marked) == plain
    # a cut-off beyond the catalogue costs no more than the catalogue (5 items here)
    deep = evaluate_recommendation_file(split, marked, ks=(5, 10**8))
    assert deep["recall@100000000"] == deep["recall@5"] == plain["recall@10"]
