"""``slit``: a linear next-item model solved in closed form, after the transition part of SLIST
(Choi et al., "Session-aware Linear Item-Item Models for Session-based Recommendation", WWW 2021).

Each training position ``t`` of a user's ordered history is one example: its input is the
``window`` items before it, the ``k``-th most recent weighted ``exp(-k / decay)`` (``k = 0`` for the
item just before), a row ``x_t`` over the catalogue; its target is the item at ``t``. The item-to-
next-item weights ``W`` minimise ``‖X W - Y‖² + reg ‖W‖²`` over all positions:
``W = (XᵀX + reg·I)⁻¹ XᵀY``, one dense solve in the number of items (as EASE's inverse). A history
is scored by ``x W`` for the input row built from its last ``window`` items, so the order matters:
the same items in another order weigh differently and point elsewhere. No epochs, no seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models.base import Recommender
from clarec.models.params import param
from clarec.models.registry import register


@register("slit")
class SLIT(Recommender):
    """See the module docstring.

    Hyper-parameters:
        reg: L2 regularisation of ``W`` (added to the diagonal of ``XᵀX``).
        decay: recency scale: the ``k``-th most recent item before a position weighs ``exp(-k / decay)``.
        window: how many of the most recent items form the input.
        max_items: refuse catalogues larger than this (two dense ``n_items × n_items`` float64
            matrices are held while fitting: 30,000 items ≈ 14 GB).
    """

    supports_histories = True
    history_mode = "exact"
    supports_new_items = True

    reg = param(100.0, gt=0)
    decay = param(2.0, gt=0)
    window = param(10, ge=1)
    max_items = param(30000, ge=1)

    def _inputs(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        """One input row per history: its last ``window`` items, recency-weighted (repeats add up)."""
        weights = np.exp(-np.arange(self.window) / self.decay)
        tails = [h[-self.window :][::-1] for h in histories]  # most recent first
        rows = np.repeat(np.arange(len(tails)), [len(t) for t in tails])
        cols = np.concatenate(tails) if tails else np.empty(0, dtype=np.int64)
        vals = np.concatenate([weights[: len(t)] for t in tails]) if tails else np.empty(0)
        x = sp.csr_matrix((vals, (rows, cols)), shape=(len(tails), self.n_items))
        x.sum_duplicates()
        return x

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        n = self.n_items
        if n > self.max_items:
            raise ConfigError(
                f"{self.name}: {n} items exceed max_items={self.max_items}; the dense solve needs about "
                f"{2 * n * n * 8 / 2**30:.1f} GiB. Raise max_items if you have the memory"
            )
        histories = train.user_histories()
        # every position after the first of every history: the items before it → the item at it
        prefixes = [h[:t] for h in histories for t in range(1, len(h))]
        targets = np.asarray([h[t] for h in histories for t in range(1, len(h))], dtype=np.int64)
        x = self._inputs(prefixes)
        y = sp.csr_matrix(
            (np.ones(len(targets)), (np.arange(len(targets)), targets)), shape=(len(targets), n)
        )
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n)] += self.reg
        factor = scipy.linalg.cho_factor(gram, overwrite_a=True, check_finite=False)
        self.weights = scipy.linalg.cho_solve(
            factor, (x.T @ y).toarray(), overwrite_b=True, check_finite=False
        ).astype(np.float32)
        self.inputs_ = self._inputs(histories).astype(np.float32)

    def score(self, users) -> np.ndarray:
        users = self._check_users(users)
        return np.asarray(self.inputs_[users] @ self.weights, dtype=np.float32)

    def score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``x W`` for each history's input row: exactly :meth:`score` for a training user's own
        history; an empty history scores every item 0."""
        x = self._inputs(self._check_histories(histories)).astype(np.float32)
        return np.asarray(x @ self.weights, dtype=np.float32)

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """New items get zero rows and columns in ``W`` (no transitions yet): score 0 until refit."""
        self._check_fitted()
        n, m = self.n_items, len(items)
        grown = np.zeros((n + m, n + m), dtype=np.float32)
        grown[:n, :n] = self.weights
        self.weights = grown
        self._grow_items(m)
        self.inputs_ = sp.csr_matrix(
            (self.inputs_.data, self.inputs_.indices, self.inputs_.indptr), shape=(self.n_users, self.n_items)
        )
        return np.arange(n, n + m, dtype=np.int64)

    def item_similarity(self, items) -> np.ndarray:
        """Row ``i`` of ``W``: how much item ``i``, as the last item of a history, raises each item's
        score as the next one."""
        items = self._check_items(items)
        return self.weights[items].copy()

    def _get_state(self) -> dict[str, np.ndarray]:
        x = self.inputs_
        return {
            "weights": self.weights,
            "inputs.data": x.data,
            "inputs.indices": x.indices,
            "inputs.indptr": x.indptr,
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights = np.asarray(state["weights"], dtype=np.float32)
        self.inputs_ = sp.csr_matrix(
            (state["inputs.data"], state["inputs.indices"], state["inputs.indptr"]),
            shape=(self.n_users, self.n_items),
        )
