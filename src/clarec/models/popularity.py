"""Most-popular baseline: every user gets the items most users interacted with in training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from clarec.data.dataset import Dataset
from clarec.models.base import Recommender
from clarec.models.params import param
from clarec.models.registry import register


@register("popularity")
class Popularity(Recommender):
    """Scores each item by its number of distinct training users (with ``weighted``, the sum of its
    interactions' weights: a purchase may count more than a view), the same for every user.

    ``similar_items`` also ranks by popularity: the popular items are the best a model without
    item features can offer, and it is the baseline every other model must beat.
    """

    supports_histories = True
    history_mode = "constant"
    supports_new_items = True

    weighted = param(False)

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        # self.seen is binary unless weighted, so column sums count distinct users (or sum weights)
        self.popularity = np.asarray(self.seen.sum(axis=0), dtype=np.float32).ravel()

    def score(self, users) -> np.ndarray:
        users = self._check_users(users)
        return np.broadcast_to(self.popularity, (len(users), self.n_items)).copy()

    def score_histories(
        self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """The same popularity scores for every history (the history only matters for exclusion;
        ``weights`` are not read)."""
        hists = self._check_histories(histories)
        return np.broadcast_to(self.popularity, (len(hists), self.n_items)).copy()

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """New items start with popularity 0 (no training users yet)."""
        self._check_fitted()
        new = np.arange(self.n_items, self.n_items + len(items), dtype=np.int64)
        self.popularity = np.concatenate([self.popularity, np.zeros(len(items), dtype=np.float32)])
        self._grow_items(len(items))
        return new

    def item_similarity(self, items) -> np.ndarray:
        items = self._check_items(items)
        return np.broadcast_to(self.popularity, (len(items), self.n_items)).copy()

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.popularity = state["popularity"].astype(np.float32)
