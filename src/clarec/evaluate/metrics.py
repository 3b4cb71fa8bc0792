"""Accuracy metrics of top-K rankings, computed for all users at once.

Input is a ranking matrix ``topk`` (``n_users × Kmax`` item indices, best first, ``-1`` for an empty
slot) and a binary ground-truth matrix ``relevant`` (CSR, same row order). Everything is derived from
one boolean *hit matrix* and cumulative sums along the ranking, so there is no Python loop per user.
Definitions and a worked example are in ``docs/metrics.md``.

Per-user values are ``NaN`` for users without any relevant item: they cannot be scored and are
left out of every average (:func:`mean_metrics`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

#: Accuracy metrics, by the lower-case base name used in result keys (``ndcg@20``).
ACCURACY_METRICS = ("precision", "recall", "f1", "ndcg", "hit", "mrr", "map")


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """Cut-offs as sorted unique positive ints; raises ``ValueError`` otherwise."""
    ks = list(ks)
    # 10.7 or True is not a cut-off: refused, not truncated to 10 or 1
    if any(isinstance(k, bool | np.bool_) or not isinstance(k, int | np.integer | float) for k in ks) or any(
        isinstance(k, float) and not k.is_integer() for k in ks
    ):
        raise ValueError(f"cut-offs must be integers, got {ks!r}")
    out = sorted({int(k) for k in ks})
    if not out or out[0] < 1:
        raise ValueError(f"cut-offs must be positive integers, got {list(ks)!r}")
    return tuple(out)


def binary_csr(relevant: sp.spmatrix, n_rows: int | None = None) -> sp.csr_matrix:
    """A canonical binary copy: CSR, sorted indices, no duplicates, explicit zeros dropped."""
    m = sp.csr_matrix(relevant, copy=True)
    m.eliminate_zeros()
    m.sum_duplicates()
    m.data = np.ones(len(m.data), dtype=np.float32)
    if n_rows is not None and m.shape[0] != n_rows:
        raise ValueError(f"relevance has {m.shape[0]} rows for {n_rows} rankings")
    return m


def valid_slots(topk: np.ndarray) -> np.ndarray:
    """Boolean mask of slots holding an item seen for the first time in its list.

    Empty slots (``-1``) and repeats of an item already ranked higher in the same list are
    ``False``: a list cannot earn a hit twice for one item.
    """
    topk = np.asarray(topk)
    valid = topk >= 0
    if topk.shape[1] > 1:
        order = np.argsort(topk, axis=1, kind="stable")  # stable: the first occurrence sorts first
        srt = np.take_along_axis(topk, order, axis=1)
        repeat = np.zeros(topk.shape, dtype=bool)
        repeat[:, 1:] = srt[:, 1:] == srt[:, :-1]
        rows = np.nonzero(repeat)[0]
        valid[rows, order[repeat]] = False
    return valid


def hit_matrix(topk: np.ndarray, relevant: sp.spmatrix) -> np.ndarray:
    """``hits[u, r]`` is True when the item at rank ``r + 1`` of user ``u`` is relevant to ``u``.

    Membership is tested with one sorted search over ``user * n_items + item`` keys of all relevant
    pairs, vectorised over every slot of every list.
    """
    topk = np.asarray(topk, dtype=np.int64)
    rel = binary_csr(relevant, n_rows=topk.shape[0])
    n_items = rel.shape[1]
    if topk.size and topk.max(initial=-1) >= n_items:
        raise ValueError(f"ranking holds item index {int(topk.max())} ≥ n_items={n_items}")
    rel_rows = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    rel_keys = rel_rows * n_items + rel.indices  # sorted: rows ascend, indices sorted within rows
    keys = np.arange(topk.shape[0], dtype=np.int64)[:, None] * n_items + topk
    pos = np.searchsorted(rel_keys, keys)
    pos = np.minimum(pos, max(len(rel_keys) - 1, 0))
    hits = rel_keys[pos] == keys if len(rel_keys) else np.zeros(topk.shape, dtype=bool)
    return hits & valid_slots(topk)


def _at(cum: np.ndarray, k: int) -> np.ndarray:
    """Column of a cumulative array at cut-off ``k`` (lists shorter than ``k`` stop growing)."""
    if cum.shape[1] == 0:
        return np.zeros(cum.shape[0])
    return cum[:, min(k, cum.shape[1]) - 1]


def per_user_metrics(
    topk: np.ndarray,
    relevant: sp.spmatrix,
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Per-user accuracy metrics at each cut-off.

    Args:
        topk: ``(n_users, Kmax)`` item indices, best first; ``-1`` marks an empty slot. Cut-offs
            larger than ``Kmax`` treat the missing slots as empty.
        relevant: binary ``(n_users, n_items)`` ground truth, same row order as ``topk``.
        ks: cut-offs.
        metrics: base names out of :data:`ACCURACY_METRICS` (default: all).

    Returns:
        ``{"ndcg@10": array(n_users), ...}`` as float64, ``NaN`` where a user has no relevant item.
    """
    names = list(ACCURACY_METRICS if metrics is None else metrics)
    unknown = [m for m in names if m not in ACCURACY_METRICS]
    if unknown:
        raise ValueError(f"unknown accuracy metric(s) {unknown}; known: {list(ACCURACY_METRICS)}")
    ks = check_ks(ks)
    topk = np.asarray(topk, dtype=np.int64)
    if topk.ndim != 2:
        raise ValueError("topk must be a 2-d array (users × ranks)")
    rel = binary_csr(relevant, n_rows=topk.shape[0])
    n_rel = np.diff(rel.indptr).astype(np.float64)
    scored = n_rel > 0
    hits = hit_matrix(topk, rel).astype(np.float64)
    n, width = hits.shape
    ranks = np.arange(1, width + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    cum_hits = np.cumsum(hits, axis=1)
    cum_dcg = np.cumsum(hits * discount, axis=1)
    # Sum over hit positions of precision at that rank, for MAP.
    cum_ap = np.cumsum(hits * cum_hits / ranks, axis=1)
    # Ideal DCG over the first min(|relevant|, K) ranks, from a table of cumulative discounts.
    kmax = ks[-1]
    ideal_table = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, kmax + 2, dtype=np.float64)))])
    # Reciprocal rank of the first hit (0 when there is none).
    any_hit = hits.any(axis=1) if width else np.zeros(n, dtype=bool)
    first = np.argmax(hits, axis=1) + 1 if width else np.ones(n, dtype=np.int64)

    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in ks:
            h = _at(cum_hits, k)
            denom_k = np.minimum(n_rel, k)
            values = {}
            if {"precision", "f1"} & set(names):
                values["precision"] = h / k
            if {"recall", "f1"} & set(names):
                values["recall"] = h / n_rel
            if "f1" in names:
                p, r = values["precision"], values["recall"]
                values["f1"] = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
            if "ndcg" in names:
                values["ndcg"] = _at(cum_dcg, k) / ideal_table[denom_k.astype(np.int64)]
            if "hit" in names:
                values["hit"] = (h > 0).astype(np.float64)
            if "mrr" in names:
                values["mrr"] = np.where(any_hit & (first <= k), 1.0 / first, 0.0)
            if "map" in names:
                values["map"] = _at(cum_ap, k) / denom_k
            for name in names:
                out[f"{name}@{k}"] = np.where(scored, values[name], np.nan)
    return out


def mean_metrics(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """Average of each per-user array over the users that could be scored (``NaN`` left out);
    ``NaN`` when no user could be scored."""
    out = {}
    for name, values in per_user.items():
        ok = ~np.isnan(values)
        out[name] = float(values[ok].mean()) if ok.any() else float("nan")
    return out
