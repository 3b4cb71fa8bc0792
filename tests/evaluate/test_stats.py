"""Paired significance tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clarec.errors import ClarecError
from clarec.evaluate.stats import bootstrap_ci, holm, paired_t_test, paired_test, wilcoxon_test

A = np.array([0.30, 0.25, 0.40, 0.35, 0.20, 0.45])
B = np.array([0.28, 0.20, 0.41, 0.30, 0.15, 0.40])
# Differences: 0.02, 0.05, -0.01, 0.05, 0.05, 0.05 -> mean 0.035


def test_paired_t_test_by_hand():
    res = paired_t_test(A, B)
    d = A - B
    # t = mean / (sd / √n) with the sample standard deviation.
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert res.test == "t-test"
    assert res.statistic == pytest.approx(t, rel=1e-12)
    # Deviations from 0.035: five of ±0.015 and one of −0.045 -> s² = 0.00315/5, s = 0.025100,
    # s/√6 = 0.010247, t = 0.035/0.010247 = 3.41565; two-sided p from t with 5 degrees of freedom.
    assert res.statistic == pytest.approx(3.41565, abs=1e-5)
    assert res.mean_diff == pytest.approx(0.035)
    assert res.p_value == pytest.approx(0.018927, abs=1e-6)
    assert res.n == 6 and res.significant(0.05) and not res.significant(0.01)
    # its interval: mean ± t(0.975, 5) · s/√6 = 0.035 ± 2.570582 · 0.010247, which leaves out 0 as p < 0.05
    assert res.interval == "t"
    assert (res.ci_low, res.ci_high) == pytest.approx((0.035 - 0.026341, 0.035 + 0.026341), abs=2e-6)
    # three seeds: a percentile bootstrap is the range of the three differences (no 95% interval);
    # the t interval is wider, and leaves out 0 exactly when p < 0.05
    three = paired_t_test([0.30, 0.31, 0.35], [0.29, 0.29, 0.30])  # differences 0.01, 0.02, 0.05
    assert three.ci_low < 0.01 and three.ci_high > 0.05
    assert (three.ci_low > 0) == (three.p_value < 0.05)


def test_wilcoxon_by_hand():
    # |d| ranks: 0.01 -> 1, 0.02 -> 2, four ties at 0.05 -> 4.5 each. W = min(W+, W-) = W- = 1.
    res = wilcoxon_test(A, B)
    assert res.test == "wilcoxon"
    assert res.statistic == pytest.approx(1.0)
    # Exact null distribution, n = 6: 2 of the 64 sign patterns give W ≤ 1, doubled for two sides -> 4/64.
    assert res.p_value == pytest.approx(0.0625, abs=1e-9)


def test_nan_pairs_dropped_and_identical_arrays():
    a = np.array([1.0, np.nan, 3.0, 4.0])
    b = np.array([0.5, 2.0, np.nan, 3.0])
    assert paired_t_test(a, b).n == 2
    same = paired_t_test(A, A)
    assert (same.statistic, same.p_value, same.mean_diff, same.ci_low, same.ci_high) == (
        0.0,
        1.0,
        0.0,
        0.0,
        0.0,
    )
    assert wilcoxon_test(A, A).p_value == 1.0
    shifted = paired_t_test([1.5, 2.5, 4.0], [1.0, 2.0, 3.5])  # difference exactly 0.5 every time
    assert shifted.statistic == math.inf and shifted.p_value == 0.0


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(0)
    a = rng.normal(0.3, 0.1, 500)
    b = a - rng.normal(0.02, 0.05, 500)
    lo1, hi1 = bootstrap_ci(a, b, n_boot=2000, seed=7)
    lo2, hi2 = bootstrap_ci(a, b, n_boot=2000, seed=7)
    assert (lo1, hi1) == (lo2, hi2)
    d = a - b
    se = d.std(ddof=1) / math.sqrt(len(d))
    # The normal approximation mean ± z · sd/√n, within 5e-4 (the 95% interval's half-width is 0.0044;
    # an 89% interval asked as 95% would be 0.0008 off)
    assert lo1 == pytest.approx(d.mean() - 1.959964 * se, abs=5e-4)
    assert hi1 == pytest.approx(d.mean() + 1.959964 * se, abs=5e-4)
    lo90, hi90 = bootstrap_ci(a, b, confidence=0.9, n_boot=2000, seed=7)
    assert lo90 == pytest.approx(d.mean() - 1.644854 * se, abs=5e-4)
    assert hi90 == pytest.approx(d.mean() + 1.644854 * se, abs=5e-4)
    narrow = bootstrap_ci(a, b, confidence=0.5, n_boot=2000, seed=7)
    assert lo1 < lo90 < narrow[0] < narrow[1] < hi90 < hi1


def test_errors_and_dispatch():
    with pytest.raises(ClarecError, match="equal length"):
        paired_t_test(A, B[:3])
    with pytest.raises(ClarecError, match="at least 2"):
        paired_t_test([1.0], [2.0])
    with pytest.raises(ClarecError, match="unknown paired test"):
        paired_test(A, B, test="anova")
    with pytest.raises(ClarecError, match="confidence"):
        bootstrap_ci(A, B, confidence=1.5)
    assert paired_test(A, B, test="wilcoxon").test == "wilcoxon"


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 (m = 3): 3·0.01, max(0.03, 2·0.02), max(0.04, 1·0.04); input order kept
    np.testing.assert_allclose(holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    # monotone: a larger raw p never gets a smaller adjusted one; capped at 1
    np.testing.assert_allclose(holm([0.5, 0.001, 0.3]), [0.6, 0.003, 0.6])
    out = holm([0.02, float("nan"), 0.01])  # NaN is no test: m = 2
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)
    assert holm([]).shape == (0,)


def test_a_paired_test_of_something_else_than_numbers_says_what_it_needs():
    with pytest.raises(ClarecError, match=r"per_user\['ndcg@20'\]"):
        paired_t_test({"ndcg@20": [0.1, 0.2]}, {"ndcg@20": [0.3, 0.1]})
