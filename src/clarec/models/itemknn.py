"""Item-based nearest neighbours (Sarwar et al., 2001) with shrunk cosine similarity.

``sim(i, j) = x_i · x_j / (‖x_i‖ ‖x_j‖ + shrink)`` over item columns of the user × item matrix,
optionally after BM25 or TF-IDF weighting of users; each item keeps its ``k_neighbors`` most
similar items (a sparse matrix ``S``), and a user's scores are ``x_u S``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from clarec.data.dataset import Dataset
from clarec.models.base import Recommender
from clarec.models.params import param
from clarec.models.registry import register

WEIGHTINGS = ("none", "tfidf", "bm25")


def keep_top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (ties: lower column first), vectorised."""
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    counts = np.diff(m.indptr)
    if counts.max(initial=0) <= k:
        return m
    rows = np.repeat(np.arange(m.shape[0]), counts)
    # Sort entries by row, then value descending, then column, and rank them within their row.
    order = np.lexsort((m.indices, -m.data, rows))
    rank = np.arange(len(order)) - m.indptr[rows[order]]
    keep = np.sort(order[rank < k])
    return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)


def weight_users(x: sp.csr_matrix, method: str, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Re-weight a binary user × item matrix before computing item similarities.

    ``tfidf`` and ``bm25`` give users with long histories less weight (their co-occurrences say
    less about any one pair of items); ``bm25`` also normalises by item popularity.
    """
    x = sp.csr_matrix(x, dtype=np.float64, copy=True)
    if method == "none":
        return x
    n_users, n_items = x.shape
    user_len = np.diff(x.indptr).astype(np.float64)
    # Smoothed idf per user (as scikit-learn's): shorter histories weigh more, and it stays >= 1.
    idf = np.log((1.0 + n_items) / (1.0 + user_len)) + 1.0
    idf_per_entry = np.repeat(idf, np.diff(x.indptr))
    if method == "tfidf":
        x.data = np.sqrt(x.data) * idf_per_entry
        return x
    item_len = np.bincount(x.indices, weights=x.data, minlength=n_items)
    norm = (1.0 - b) + b * item_len / max(item_len.mean(), 1e-12)
    x.data = x.data * (k1 + 1.0) / (k1 * norm[x.indices] + x.data) * idf_per_entry
    return x


@register("itemknn")
class ItemKNN(Recommender):
    """Item-item collaborative filtering with shrunk cosine similarity.

    Args:
        k_neighbors: similar items kept per item (the rest are set to zero).
        shrink: added to the norm product; damps similarities supported by few users.
        weighting: ``"none"``, ``"tfidf"`` or ``"bm25"`` user weighting before the cosine.
        bm25_k1: BM25 saturation (only for ``weighting="bm25"``).
        bm25_b: BM25 length normalisation (only for ``weighting="bm25"``).
        block_size: items per block when computing similarities, which bounds the memory of
            the dense-ish intermediate products.
        weighted: the interactions' weights (``behavior_weights``, a weight column) instead of 0/1,
            in the similarities and in a user's scores.
    """

    supports_histories = True
    supports_new_items = True

    k_neighbors = param(100, ge=1)
    shrink = param(10.0, ge=0)
    weighting = param("none", choices=WEIGHTINGS)
    bm25_k1 = param(1.2, ge=0)
    bm25_b = param(0.75, ge=0, le=1)
    block_size = param(2048, ge=1)
    weighted = param(False)

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        x = weight_users(self.seen, self.weighting, self.bm25_k1, self.bm25_b)
        xt = x.T.tocsr()  # item × user
        norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel())
        blocks = []
        for start in range(0, self.n_items, self.block_size):
            stop = min(start + self.block_size, self.n_items)
            dots = (xt[start:stop] @ x).tocoo()  # (block, n_items) co-occurrence dot products
            rows, cols = dots.row, dots.col
            # A non-zero dot product implies both norms are non-zero, so no division by zero.
            vals = dots.data / (norms[rows + start] * norms[cols] + self.shrink)
            vals[rows + start == cols] = 0.0  # an item is not its own neighbour
            block = sp.csr_matrix((vals, (rows, cols)), shape=(stop - start, self.n_items))
            blocks.append(keep_top_per_row(block, self.k_neighbors))
        self.similarity = sp.vstack(blocks, format="csr").astype(np.float32)

    def score(self, users) -> np.ndarray:
        users = self._check_users(users)
        return np.asarray((self.seen[users] @ self.similarity).toarray(), dtype=np.float32)

    def score_histories(
        self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """``x S`` for the binary vector ``x`` of each history: exactly :meth:`score` for a training
        user's own history (with ``weighted``, given each item's ``weights``: ``_history_matrix``)."""
        x = self._history_matrix(histories, weights=weights)
        return np.asarray((x @ self.similarity).toarray(), dtype=np.float32)

    def history_input(self, history: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return self._history_matrix([history], weights=None if weights is None else [weights]).toarray()[0]

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """New items get no neighbours (no co-occurrences yet): score 0 until the model is refitted."""
        self._check_fitted()
        n, m = self.n_items, len(items)
        s = self.similarity.tocsr()
        self.similarity = sp.csr_matrix(
            (s.data, s.indices, np.concatenate([s.indptr, np.full(m, s.indptr[-1])])), shape=(n + m, n + m)
        )
        self._grow_items(m)
        return np.arange(n, n + m, dtype=np.int64)

    def item_similarity(self, items) -> np.ndarray:
        items = self._check_items(items)
        return np.asarray(self.similarity[items].toarray(), dtype=np.float32)

    def _get_state(self) -> dict[str, sp.csr_matrix]:
        return {"similarity": self.similarity}

    def _set_state(self, state: dict) -> None:
        self.similarity = state["similarity"]
