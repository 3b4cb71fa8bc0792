"""Beyond-accuracy metrics of top-K rankings: coverage, diversity, novelty, popularity, Gini.

All functions take the ranking matrix ``topk`` (``n_users × Kmax`` item indices, ``-1`` for an empty
slot) and a cut-off ``k``; only the first ``k`` slots count, and an item repeated within a list counts
once. Definitions are in ``docs/metrics.md``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from clarec.evaluate.metrics import valid_slots

#: Beyond-accuracy metrics, by the base name used in result keys (``coverage@20``).
BEYOND_METRICS = ("coverage", "diversity", "novelty", "avg_pop", "gini")


def _cut(topk: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` slots and the mask of slots that hold a (first-seen) item."""
    if k < 1:
        raise ValueError(f"cut-off must be a positive integer, got {k}")
    top = np.asarray(topk, dtype=np.int64)[:, :k]
    return top, valid_slots(top)


def recommendation_counts(topk: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """How many lists recommend each item within their first ``k`` slots (length ``n_items``)."""
    top, ok = _cut(topk, k)
    return np.bincount(top[ok], minlength=n_items)[:n_items]


def item_coverage(topk: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue recommended to at least one user within the top ``k``."""
    if n_items <= 0:
        return float("nan")
    return float(np.count_nonzero(recommendation_counts(topk, n_items, k)) / n_items)


def gini_index(counts: np.ndarray) -> float:
    """Gini index of a frequency distribution over all items, zeros included.

    0 when every item is recommended equally often, approaching 1 when a few items take all the
    recommendations. With counts sorted ascending ``x_1..x_n``:
    ``G = Σ (2i − n − 1) x_i / (n Σ x)``; ``NaN`` when nothing was recommended.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return float("nan")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(np.sum((2 * i - n - 1) * x) / (n * total))


def self_information(popularity: np.ndarray, n_users: int) -> np.ndarray:
    """``−log2(pop(i) / n_users)`` per item, popularity from the training interactions.

    Items never seen in training get the popularity of an item seen once (``log2(n_users)``, the
    largest finite value) rather than infinity, so a single cold item cannot dominate an average.
    """
    if n_users <= 0:
        raise ValueError("n_users must be positive")
    pop = np.maximum(np.asarray(popularity, dtype=np.float64), 1.0)
    return -np.log2(pop / n_users)


def _list_mean(values: np.ndarray, topk: np.ndarray, k: int) -> np.ndarray:
    """Per-list mean of an item-level quantity over the first ``k`` slots (``NaN`` for empty lists)."""
    top, ok = _cut(topk, k)
    v = np.where(ok, np.asarray(values, dtype=np.float64)[np.where(ok, top, 0)], 0.0)
    count = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, v.sum(axis=1) / count, np.nan)


def novelty(topk: np.ndarray, popularity: np.ndarray, n_users: int, k: int) -> np.ndarray:
    """Per-user mean self-information of the recommended items (see :func:`self_information`)."""
    return _list_mean(self_information(popularity, n_users), topk, k)


def average_popularity(topk: np.ndarray, popularity: np.ndarray, k: int) -> np.ndarray:
    """Per-user mean training popularity (number of training users) of the recommended items."""
    return _list_mean(popularity, topk, k)


def _unit_rows(features) -> sp.csr_matrix | np.ndarray:
    """Rows scaled to unit length; zero rows stay zero (cosine 0 with every item)."""
    if sp.issparse(features):
        f = sp.csr_matrix(features, dtype=np.float64)
        norms = np.sqrt(np.asarray(f.multiply(f).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(scale) @ f)
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError("item features must be a 2-d array (items × dimensions)")
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    return np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)


def intra_list_diversity(topk: np.ndarray, item_features, k: int, batch_size: int = 4096) -> np.ndarray:
    """Per-user mean pairwise cosine distance ``1 − cos(v_i, v_j)`` within the first ``k`` slots.

    ``item_features`` is any ``(n_items, d)`` representation, dense (embeddings) or sparse (genre
    one-hot). A list with fewer than two items has no pairs and gets ``NaN``. Computed without
    enumerating pairs: with unit vectors and ``s = Σ v_i``, ``Σ_{i<j} cos = (|s|² − Σ|v_i|²) / 2``.
    """
    top, ok = _cut(topk, k)
    unit = _unit_rows(item_features)
    n_items = unit.shape[0]
    if top.size and top.max(initial=-1) >= n_items:
        raise ValueError(f"ranking holds item index {int(top.max())} ≥ {n_items} feature rows")
    self_norm = np.asarray(unit.multiply(unit).sum(axis=1)).ravel() if sp.issparse(unit) else (unit**2).sum(1)
    m = ok.sum(axis=1).astype(np.float64)
    pair_cos_sum = np.zeros(len(top))
    for start in range(0, len(top), batch_size):
        t, o = top[start : start + batch_size], ok[start : start + batch_size]
        rows = np.nonzero(o)[0]
        # Indicator matrix of each list's items, so the sum of vectors is one sparse product.
        ind = sp.csr_matrix((np.ones(len(rows)), (rows, t[o])), shape=(len(t), n_items))
        s = ind @ unit
        sq = np.asarray(s.multiply(s).sum(axis=1)).ravel() if sp.issparse(s) else (s**2).sum(axis=1)
        own = np.asarray(ind @ self_norm).ravel()
        pair_cos_sum[start : start + len(t)] = (sq - own) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        n_pairs = m * (m - 1) / 2.0
        return np.where(n_pairs > 0, 1.0 - pair_cos_sum / n_pairs, np.nan)
