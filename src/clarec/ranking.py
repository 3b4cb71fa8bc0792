"""Top-k selection shared by recommenders and the evaluator."""

from __future__ import annotations

import numpy as np
import torch


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores per row, best first.

    Ties are broken by the lower item index, so results are deterministic — also when equal scores
    straddle the k-th place. ``k`` larger than the number of columns is clipped. Uses torch's
    multi-threaded top-k on float32 rows. A row holding a NaN score has a NaN among its values (torch
    ranks NaN first), so a caller can refuse it; its order is then meaningless.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("scores must be a 2-d array (users × items)")
    return top_k_tensor(torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)), k)


def top_k_tensor(scores: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of a float32 ``(rows, items)`` tensor on any device: the top-k runs there, and
    only the ``k + 1`` best per row come back (whole rows only where the k-th score is tied with an
    item left out)."""
    n_rows, n_cols = scores.shape
    k = min(int(k), n_cols)
    if k <= 0 or n_rows == 0:
        return np.empty((n_rows, max(k, 0)), np.int64), np.empty((n_rows, max(k, 0)), np.float32)
    # One extra place tells whether the k-th score is tied with an item left out: if the (k+1)-th
    # value is strictly smaller, the chosen set is exact whatever order torch broke ties in.
    k1 = min(k + 1, n_cols)
    vals, idx = torch.topk(scores, k1, dim=1, largest=True, sorted=True)
    vals, idx = vals.cpu().numpy(), idx.cpu().numpy().astype(np.int64)
    boundary = np.empty(0, np.int64)
    if k1 > k:
        # a row with a NaN (ranked first by torch) keeps it in its values, for the caller to refuse
        boundary = np.flatnonzero((vals[:, k - 1] == vals[:, k]) & ~np.isnan(vals[:, 0]))
        vals, idx = np.ascontiguousarray(vals[:, :k]), np.ascontiguousarray(idx[:, :k])
        if boundary.size:
            rows = scores[torch.from_numpy(boundary).to(scores.device)].cpu().numpy()
            idx[boundary], vals[boundary] = _exact_rows(rows, vals[boundary, k - 1], k)
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


def top_k_inner_product(
    query: np.ndarray,
    items: np.ndarray,
    items_t64: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    max_item_norm: float | None = None,
    search=None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """What ``top_k`` gives for ``scores = float32(float64(query) @ items_t64)`` (one query vector;
    ``items_t64`` is ``items.T`` in float64), with the ``exclude`` indices left out, computed
    without the float64 product over every item.

    A float32 product ranks all items; float32 rounding moves a dot product of length ``d`` by at most
    ``γ_d·|q|·|v|`` (``γ_d = d·u / (1 - d·u)``, ``u = 2^-24``, whatever the order of the sums), so
    every item that can reach the top ``k`` of the exact scores lies within twice that (plus a few
    float32 spacings, so that no left-out item can tie the k-th) of the k-th float32 score. Only those
    candidates are scored exactly and ranked by ``top_k``, whose tie order (lower index first) they
    keep, being in index order. ``search(query, n)``, when given, returns the ``n`` largest float32
    inner products ``(ids, values)``, best first (a FAISS ``IndexFlatIP`` over ``items``): it is asked
    for more until the last one it returns lies below the candidates' bound, so that every candidate
    is among them; otherwise all items are multiplied. Returns ``(ids, scores)`` of the finite
    scores, best first, or ``None`` when there are fewer than ``k`` eligible items (rank them all
    instead).
    """
    q32 = np.asarray(query, dtype=np.float32).ravel()
    n, d = items.shape
    k = int(k)
    if k <= 0 or k >= n:
        return None
    if max_item_norm is None:
        max_item_norm = float(np.sqrt((np.asarray(items, dtype=np.float64) ** 2).sum(axis=1).max()))
    u = 2.0**-24
    delta = d * u / (1 - d * u) * float(np.linalg.norm(q32.astype(np.float64))) * max_item_norm

    def margin(kth: float) -> float:
        return 2.0 * delta + 4.0 * float(np.spacing(np.float32(abs(kth)))) + 1e-30

    excluded = (
        np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None else np.empty(0, np.int64)
    )
    cand = None
    if search is not None:
        fetch = k + len(excluded) + max(k, 32)
        while fetch < n and cand is None:
            ids, approx = search(q32, fetch)
            ids, approx = np.asarray(ids, dtype=np.int64).ravel(), np.asarray(approx).ravel()
            keep = (ids >= 0) & ~np.isin(ids, excluded)
            if keep.sum() >= k:
                kept_ids, kept = ids[keep], approx[keep]
                kth = float(kept[k - 1])
                if not np.isfinite(kth):
                    return None
                if float(approx[-1]) < kth - margin(kth):  # nothing left out can be a candidate
                    cand = np.sort(kept_ids[kept >= kth - margin(kth)])
            fetch *= 4
    if cand is None:
        approx = items @ q32
        if len(excluded):
            approx[excluded] = -np.inf
        kth = np.partition(approx, n - k)[n - k]
        if not np.isfinite(kth):
            return None
        cand = np.flatnonzero(approx >= kth - margin(float(kth)))
    # the candidates' columns in the layout of ``items_t64`` (a transposed C array), so that BLAS
    # runs the same kind of product as over all items
    sub = np.ascontiguousarray(items_t64.T[cand]).T
    exact = (q32.astype(np.float64)[None, :] @ sub)[0].astype(np.float32)
    i, v = top_k(exact[None, :], k)
    keep = np.isfinite(v[0])
    return cand[i[0][keep]], v[0][keep]
