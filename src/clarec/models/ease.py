"""EASE: embarrassingly shallow autoencoder (Steck, WWW 2019).

Closed form: with ``G = XᵀX + λI`` and ``P = G⁻¹``, the item-item weights are
``B = I - P · diag(1 / diag(P))``, i.e. ``B_ij = -P_ij / P_jj`` off the diagonal and ``B_jj = 0``.
A user's scores are ``x_u B``. The inversion is dense in the number of items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.linalg

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models.base import Recommender
from clarec.models.params import param
from clarec.models.registry import register


def check_dense_items(model: Recommender, solve: str, other: str = "", matrices: int = 2) -> None:
    """Refuse a catalogue above ``model.max_items`` for a model that holds ``matrices`` dense
    ``n_items²`` float64 matrices at its peak while fitting (its ``solve`` named in the message,
    ``other`` a way out)."""
    n = model.n_items
    if n > model.max_items:
        raise ConfigError(
            f"{model.name}: {n} items exceed max_items={model.max_items}; the dense {solve} needs about "
            f"{matrices * n * n * 8 / 2**30:.1f} GiB. Raise max_items if you have the memory{other}"
        )


def grow_item_item(model: Recommender, m: int) -> np.ndarray:
    """Append ``m`` items to a model scored by an item-item matrix ``model.weights``: zero rows and
    columns (no evidence about them until a refit); returns their indices."""
    n = model.n_items
    grown = np.zeros((n + m, n + m), dtype=np.float32)
    grown[:n, :n] = model.weights
    model.weights = grown
    model._grow_items(m)
    return np.arange(n, n + m, dtype=np.int64)


@register("ease")
class EASE(Recommender):
    """Linear item-item autoencoder with a zero diagonal, solved in closed form.

    Args:
        reg: L2 regularisation ``λ`` added to the Gram matrix's diagonal (a few hundred suits
            MovieLens-sized data; larger catalogues with sparser data often want more).
        max_items: refuse catalogues larger than this, since fitting holds two dense
            ``n_items × n_items`` float64 matrices (30,000 items ≈ 14 GB).
        weighted: learn from and score with the interactions' weights (``behavior_weights``, a
            weight column; repeated pairs summed) instead of 0/1.
    """

    supports_histories = True
    supports_new_items = True

    reg = param(250.0, gt=0)
    max_items = param(30000, ge=1)
    weighted = param(False)

    def _check_size(self) -> None:
        check_dense_items(self, "inversion", ", or use itemknn")

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        self._check_size()
        n = self.n_items
        x = self.seen
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices(n)] += self.reg
        # G is symmetric positive definite (λ > 0), so the inverse exists; overwrite G to save memory.
        p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        p /= -np.diag(p)[None, :]
        np.fill_diagonal(p, 0.0)
        self.weights = p.astype(np.float32)

    def score(self, users) -> np.ndarray:
        users = self._check_users(users)
        return np.asarray(self.seen[users] @ self.weights, dtype=np.float32)

    def score_histories(
        self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """``x B`` for the binary vector ``x`` of each history: exactly :meth:`score` for a training
        user's own history (with ``weighted``, given each item's ``weights``: ``_history_matrix``)."""
        x = self._history_matrix(histories, weights=weights)
        return np.asarray(x @ self.weights, dtype=np.float32)

    def history_input(self, history: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return self._history_matrix([history], weights=None if weights is None else [weights]).toarray()[0]

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """New items get zero rows and columns in ``B`` (no co-occurrences yet): score 0 until refit."""
        self._check_fitted()
        return grow_item_item(self, len(items))

    def item_similarity(self, items) -> np.ndarray:
        """Row ``i`` of ``B``: how much item ``i`` in a history raises each other item's score."""
        items = self._check_items(items)
        return self.weights[items].copy()

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights = state["weights"].astype(np.float32)
