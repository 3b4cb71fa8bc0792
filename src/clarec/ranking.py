"""Top-k selection shared by recommenders and the evaluator."""

from __future__ import annotations

import numpy as np
import torch


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores per row, best first.

    Ties are broken by the lower item index, so results are deterministic — also when equal scores
    straddle the k-th place. ``k`` larger than the number of columns is clipped. Uses torch's
    multi-threaded top-k on float32 rows (scores must not be NaN).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("scores must be a 2-d array (users × items)")
    n_rows, n_cols = scores.shape
    k = min(int(k), n_cols)
    if k <= 0 or n_rows == 0:
        return np.empty((n_rows, max(k, 0)), np.int64), np.empty((n_rows, max(k, 0)), np.float32)
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    # One extra place tells whether the k-th score is tied with an item left out: if the (k+1)-th
    # value is strictly smaller, the chosen set is exact whatever order torch broke ties in.
    k1 = min(k + 1, n_cols)
    vals, idx = torch.topk(torch.from_numpy(scores), k1, dim=1, largest=True, sorted=True)
    vals, idx = vals.numpy(), idx.numpy().astype(np.int64)
    boundary = np.empty(0, np.int64)
    if k1 > k:
        boundary = np.flatnonzero(vals[:, k - 1] == vals[:, k])
        vals, idx = np.ascontiguousarray(vals[:, :k]), np.ascontiguousarray(idx[:, :k])
        if boundary.size:
            idx[boundary], vals[boundary] = _exact_rows(scores[boundary], vals[boundary, k - 1], k)
    # torch.topk does not promise an order among equal values: sort ties by index (and sort the
    # rows rebuilt above, which come back in index order).
    if k > 1:
        tied = np.flatnonzero(np.any(vals[:, 1:] == vals[:, :-1], axis=1))
        tied = np.union1d(tied, boundary)
        if tied.size:
            v, i = vals[tied], idx[tied]
            order = np.lexsort((i, -v.astype(np.float64)), axis=1)
            idx[tied] = np.take_along_axis(i, order, axis=1)
            vals[tied] = np.take_along_axis(v, order, axis=1)
    return idx, vals


def _exact_rows(sub: np.ndarray, kth: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of rows whose k-th score is tied with a left-out item: all items above the k-th
    score, then the lowest-index items equal to it, until k are chosen (unsorted)."""
    above = sub > kth[:, None]
    equal = sub == kth[:, None]
    need = k - above.sum(axis=1)
    take = above | (equal & (np.cumsum(equal, axis=1) <= need[:, None]))
    rows, cols = np.nonzero(take)  # row-major: exactly k columns per row, ascending
    cols = cols.reshape(len(sub), k).astype(np.int64)
    return cols, np.take_along_axis(sub, cols, axis=1)
