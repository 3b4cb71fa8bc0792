"""Paired significance tests between two systems.

Both arrays hold one value per *pair* — per user (``EvalResult.per_user`` of two models on the same
split, aligned by ``EvalResult.users``) or per seed. Pairs where either value is ``NaN`` are dropped.
Each test also reports the mean difference ``mean(a − b)`` with a confidence interval: the t-test the
Student t interval that goes with it (it leaves out 0 exactly when p < 1 − confidence), the Wilcoxon
test a percentile bootstrap interval over pairs (seeded, so reruns give the same interval). A
percentile bootstrap of a handful of seeds is no 95% interval: of 3 pairs it is the range of the
three differences, which holds the true mean about 3 times in 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from clarec.errors import ClarecError


@dataclass(frozen=True)
class PairedTestResult:
    """Outcome of a paired test of ``a`` against ``b``."""

    test: str  #: "t-test" or "wilcoxon"
    statistic: float
    p_value: float
    mean_diff: float  #: mean of a − b
    ci_low: float  #: confidence interval of the mean difference (see :attr:`interval`)
    ci_high: float
    confidence: float
    n: int  #: number of pairs used
    interval: str = "bootstrap"  #: "t" (Student t) or "bootstrap" (percentile, over pairs)

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    try:
        a = np.asarray(a, dtype=np.float64).ravel()
        b = np.asarray(b, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ClarecError(
            "a paired test compares two sequences of numbers, one per pair: per user, e.g. "
            "result_a.per_user['ndcg@20'] and result_b.per_user['ndcg@20'] (the same users), or per seed"
        ) from None
    if a.shape != b.shape:
        raise ClarecError(f"paired test needs arrays of equal length, got {len(a)} and {len(b)}")
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if len(a) < 2:
        raise ClarecError(f"paired test needs at least 2 pairs without NaN, got {len(a)}")
    return a, b


def bootstrap_ci(a, b, confidence: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(a − b)``, resampling pairs with replacement."""
    if not 0 < confidence < 1:
        raise ClarecError(f"confidence must lie in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ClarecError(f"n_boot must be positive, got {n_boot}")
    a, b = _pairs(a, b)
    diff = a - b
    n = len(diff)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    # Resample in blocks so memory stays near 8M indices however many pairs there are.
    block = max(1, (1 << 23) // n)
    for lo in range(0, n_boot, block):
        hi = min(lo + block, n_boot)
        means[lo:hi] = diff[rng.integers(0, n, size=(hi - lo, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_t_test(a, b, confidence: float = 0.95) -> PairedTestResult:
    """Two-sided paired t-test of ``a`` vs ``b`` with the Student t interval of the mean difference
    (``mean ± t · sd / √n``, n − 1 degrees of freedom); all-equal pairs give statistic 0 and p = 1, a
    constant non-zero difference an infinite statistic, p = 0 and the interval of that one value."""
    if not 0 < confidence < 1:
        raise ClarecError(f"confidence must lie in (0, 1), got {confidence}")
    a, b = _pairs(a, b)
    diff = a - b
    mean = float(diff.mean())
    if np.all(diff == diff[0]):  # no spread: the difference is certain, scipy would warn
        stat, p = (0.0, 1.0) if diff[0] == 0 else (float(np.copysign(np.inf, diff[0])), 0.0)
        low = high = mean
    else:
        res = sps.ttest_rel(a, b)
        stat, p = float(res.statistic), float(res.pvalue)
        half = float(sps.t.ppf((1 + confidence) / 2, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))
        low, high = mean - half, mean + half
    return PairedTestResult("t-test", stat, p, mean, low, high, confidence, len(a), interval="t")


def wilcoxon_test(a, b, confidence: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> PairedTestResult:
    """Two-sided Wilcoxon signed-rank test of ``a`` vs ``b`` (zero differences dropped, as in
    Wilcoxon's original test); all-equal pairs give statistic 0 and p = 1."""
    a, b = _pairs(a, b)
    diff = a - b
    if np.all(diff == 0):
        stat, p = 0.0, 1.0
    else:
        res = sps.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
        stat, p = float(res.statistic), float(res.pvalue)
    low, high = bootstrap_ci(a, b, confidence, n_boot, seed)
    return PairedTestResult("wilcoxon", stat, p, float(diff.mean()), low, high, confidence, len(a))


def paired_test(a, b, test: str = "t-test", **kwargs) -> PairedTestResult:
    """Run the paired test named ``"t-test"`` or ``"wilcoxon"``."""
    tests = {"t-test": paired_t_test, "ttest": paired_t_test, "wilcoxon": wilcoxon_test}
    if test not in tests:
        raise ClarecError(f"unknown paired test {test!r}; choose 't-test' or 'wilcoxon'")
    return tests[test](a, b, **kwargs)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` from tests run together (e.g. every model against
    the best): the family-wise error stays below ``alpha`` when each adjusted value is compared with
    it. Sorted ascending, the ``i``-th (from 0) of ``m`` becomes ``min(1, max_{j ≤ i} (m − j)·p_j)``;
    returned in the input's order. ``NaN`` stays ``NaN`` and does not count in ``m``."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    known = np.flatnonzero(~np.isnan(p))
    if not len(known):
        return out
    order = known[np.argsort(p[known], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out
