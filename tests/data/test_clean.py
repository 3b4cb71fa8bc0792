"""CleanReport bookkeeping and RowChecks' strict / lenient behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clarec.data.clean import (
    BAD_TIMESTAMP,
    DUPLICATE,
    MALFORMED,
    RATING_RANGE,
    UNKNOWN_ID,
    CleanReport,
    FilterStep,
    RowChecks,
    check_unknown_ids,
    parse_rating,
    parse_timestamp,
)
from clarec.errors import ConfigError, DataError


def test_report_counts_and_table():
    r = CleanReport(rows_read=10, rows_kept=7)
    r.add("a/u.data", MALFORMED, 2, 3)
    r.add("a/u.data", DUPLICATE, 1, 9)
    r.add("a/u.item", MALFORMED, 1, 4)
    r.add("a/u.item", RATING_RANGE, 0, 1)  # zero counts are not recorded
    assert r.counts == {MALFORMED: 3, DUPLICATE: 1} and r.count(MALFORMED, "u.item") == 1
    r.add_step(FilterStep("k_core", {"min_user_interactions": 5}, 12, 1, 2))
    text = str(r)
    assert text.splitlines()[0] == "rows read 10, kept 7"
    assert "u.data  malformed row  2     3" in text and "k_core  min_user_interactions=5  12" in text
    other = CleanReport(rows_read=5, rows_kept=5)
    other.add("b", DUPLICATE, 4)
    r.merge(other)
    assert r.rows_read == 15 and r.count(DUPLICATE) == 5 and r.to_dict()["issues"][-1]["count"] == 4
    assert str(CleanReport()).endswith("no problems found")


def test_strict_raises_at_the_earliest_line_across_reasons():
    checks = RowChecks("f.csv", np.array([2, 3, 4, 5]))
    parse_rating(checks, pd.Series(["4", "7", "x", "3"]), (1, 5))
    parse_timestamp(checks, pd.Series(["1", "2", "3", "-1"]))
    with pytest.raises(DataError) as e:
        checks.resolve(CleanReport(), strict=True)
    assert str(e.value) == "f.csv:3: out-of-range rating: rating 7 outside [1, 5]"


def test_lenient_drops_and_counts_each_row_once():
    checks = RowChecks("f.csv", np.array([2, 3, 4, 5]))
    parse_rating(checks, pd.Series(["4", "7", "x", "3"]), (1, 5))
    ts = parse_timestamp(checks, pd.Series(["1", "2", "", "1.5"]))
    report = CleanReport()
    keep = checks.resolve(report, strict=False)
    assert keep.tolist() == [True, False, False, False]
    assert report.counts == {MALFORMED: 1, RATING_RANGE: 1, BAD_TIMESTAMP: 1}
    assert ts.tolist()[0] == 1


def test_unknown_ids_policy():
    inter = pd.DataFrame({"item_id": ["a", "b", "z"], "_line": [1, 2, 3]})
    items = pd.DataFrame({"item_id": ["a", "b"]})
    report = CleanReport()
    assert len(check_unknown_ids(inter, items, "item_id", "f", report, "keep")) == 3
    assert (
        report.issues[0].action == "kept"
        and report.count(UNKNOWN_ID) == 1
        and report.issues[0].first_line == 3
    )
    assert len(check_unknown_ids(inter, items, "item_id", "f", CleanReport(), "drop")) == 2
    with pytest.raises(ConfigError):
        check_unknown_ids(inter, items, "item_id", "f", CleanReport(), "ignore")


@pytest.mark.parametrize("storage", ["pyarrow", "python"])
def test_to_float_same_answer_on_every_storage(storage):
    from clarec.data.clean import to_float

    clean = ["1", "2.5", "1e3", "-0.5", "4"]
    messy = [*clean, " 3 ", "", "five", "inf"]
    for values in (clean, messy):
        raw = pd.Series(values, dtype=pd.StringDtype(storage))
        expected = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
        got = to_float(raw)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, expected)  # NaN where pandas says not a number
