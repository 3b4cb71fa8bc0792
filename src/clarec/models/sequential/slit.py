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
from clarec.models.base import Recommender
from clarec.models.ease import check_dense_items, grow_item_item
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

    def _inputs(self, items: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> sp.csr_matrix:
        """One input row per span ``items[starts[r]:stops[r]]``: its last ``window`` items, the
        ``k``-th most recent weighted ``exp(-k / decay)`` (repeats add up)."""
        rows, cols, vals = [], [], []
        for k in range(self.window):
            at = stops - 1 - k
            ok = np.flatnonzero(at >= starts)
            rows.append(ok)
            cols.append(items[at[ok]])
            vals.append(np.full(len(ok), np.exp(-k / self.decay)))
        x = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(stops), self.n_items),
        )
        x.sum_duplicates()
        return x

    def _history_inputs(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        """The input row of each whole history."""
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        stops = np.cumsum(lengths)
        items = np.concatenate([np.empty(0, dtype=np.int64), *histories])
        return self._inputs(items, stops - lengths, stops)

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        n = self.n_items
        check_dense_items(self, "solve")
        # every position after the first of every history: the items before it → the item at it
        histories = train.user_histories()
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        items = np.concatenate([np.empty(0, dtype=np.int64), *histories])
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        positions = np.flatnonzero(np.arange(len(items)) > starts)
        targets = items[positions]
        x = self._inputs(items, starts[positions], positions)
        y = sp.csr_matrix(
            (np.ones(len(targets)), (np.arange(len(targets)), targets)), shape=(len(targets), n)
        )
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n)] += self.reg
        factor = scipy.linalg.cho_factor(gram, overwrite_a=True, check_finite=False)
        # the right-hand side in Fortran order, so that LAPACK solves in place (a C-ordered one is
        # copied first: three dense matrices at once, not the two the size check counts)
        solved = scipy.linalg.cho_solve(
            factor, (x.T @ y).toarray(order="F"), overwrite_b=True, check_finite=False
        )
        self.weights = np.ascontiguousarray(solved, dtype=np.float32)
        self.inputs_ = self._history_inputs(histories).astype(np.float32)

    def score(self, users) -> np.ndarray:
        users = self._check_users(users)
        return np.asarray(self.inputs_[users] @ self.weights, dtype=np.float32)

    def score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``x W`` for each history's input row: exactly :meth:`score` for a training user's own
        history; an empty history scores every item 0."""
        x = self._history_inputs(self._check_histories(histories)).astype(np.float32)
        return np.asarray(x @ self.weights, dtype=np.float32)

    def history_input(self, history: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """The input row of the history: its last ``window`` items, weighted by recency."""
        return self._history_inputs(self._check_histories([history])).toarray()[0]

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """New items get zero rows and columns in ``W`` (no transitions yet): score 0 until refit."""
        self._check_fitted()
        added = grow_item_item(self, len(items))
        self.inputs_ = sp.csr_matrix(
            (self.inputs_.data, self.inputs_.indices, self.inputs_.indptr), shape=(self.n_users, self.n_items)
        )
        return added

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
