"""Negative samplers: draw items a user did not interact with, vectorised over a batch.

A sampler draws candidates from a fixed item distribution (uniform, or popularity to the power
``alpha``) and redraws, for the whole batch at once, only the draws that hit one of the user's
training positives (rejection sampling). Randomness comes only from the sampler's own
``numpy.random.Generator``, so the same seed gives the same negatives.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from clarec.errors import ConfigError

__all__ = ["NegativeSampler", "PopularityNegativeSampler", "UniformNegativeSampler"]

SeedLike = int | np.random.Generator | None


class NegativeSampler:
    """Samples negatives from ``weights`` (one non-negative weight per item), avoiding positives.

    Args:
        positives: user × item matrix whose non-zeros are each user's positives (training only).
        weights: unnormalised sampling weight of each item; ``None`` means uniform.
        seed: an int seed or a ``numpy.random.Generator``.
        max_rounds: redraw rounds for draws that hit a positive. Draws still colliding afterwards
            are kept: they only remain for users who have seen almost every item, where no
            number of rounds would help much and an endless loop would hang training.
    """

    def __init__(
        self,
        positives: sp.spmatrix,
        weights: np.ndarray | None = None,
        seed: SeedLike = None,
        max_rounds: int = 50,
    ):
        pos = sp.csr_matrix(positives)
        pos.sum_duplicates()  # also sorts indices, which makes the row-major keys below sorted
        self.n_users, self.n_items = pos.shape
        rows = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(pos.indptr))
        # One sorted int64 key per (user, item) pair, so membership is a vectorised binary search.
        self._keys = rows * self.n_items + pos.indices.astype(np.int64)
        self._cdf = None if weights is None else _cdf(weights, self.n_items)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.max_rounds = int(max_rounds)

    def _draw(self, size: int) -> np.ndarray:
        if self._cdf is None:
            return self.rng.integers(0, self.n_items, size=size, dtype=np.int64)
        # searchsorted on the CDF is the vectorised inverse-transform draw; "right" skips items of
        # zero weight, whose CDF step is empty.
        u = self.rng.random(size) * self._cdf[-1]
        return np.minimum(np.searchsorted(self._cdf, u, side="right"), self.n_items - 1)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean mask: whether each ``(users[i], items[i])`` pair is a positive."""
        if len(self._keys) == 0:
            return np.zeros(np.shape(items), dtype=bool)
        q = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._keys, q), len(self._keys) - 1)
        return self._keys[pos] == q

    def sample(self, users: np.ndarray, n_neg: int = 1) -> np.ndarray:
        """Negative item indices, shape ``(len(users), n_neg)`` (int64)."""
        users = np.asarray(users, dtype=np.int64)
        if n_neg < 1:
            raise ConfigError(f"n_neg must be at least 1, got {n_neg}")
        u = np.repeat(users, n_neg)
        neg = self._draw(len(u))
        bad = np.flatnonzero(self.is_positive(u, neg))
        for _ in range(self.max_rounds):
            if len(bad) == 0:
                break
            neg[bad] = self._draw(len(bad))
            bad = bad[self.is_positive(u[bad], neg[bad])]
        return neg.reshape(len(users), n_neg)


class UniformNegativeSampler(NegativeSampler):
    """Every item the user has not interacted with is equally likely."""

    def __init__(self, positives: sp.spmatrix, seed: SeedLike = None, max_rounds: int = 50):
        super().__init__(positives, None, seed=seed, max_rounds=max_rounds)


class PopularityNegativeSampler(NegativeSampler):
    """Items drawn with probability ∝ ``popularity ** alpha`` (word2vec uses ``alpha=0.75``).

    ``popularity`` defaults to the number of distinct users per item in ``positives`` (training
    data only, so no leakage). ``alpha=0`` is uniform; items never interacted with get weight
    zero whenever ``alpha > 0``.
    """

    def __init__(
        self,
        positives: sp.spmatrix,
        alpha: float = 0.75,
        popularity: np.ndarray | None = None,
        seed: SeedLike = None,
        max_rounds: int = 50,
    ):
        if not np.isfinite(alpha) or alpha < 0:
            raise ConfigError(f"popularity sampler: alpha must be >= 0, got {alpha}")
        if popularity is None:
            binary = sp.csr_matrix(positives, copy=True)
            binary.sum_duplicates()
            binary.data[:] = 1.0
            popularity = np.asarray(binary.sum(axis=0)).ravel()
        popularity = np.asarray(popularity, dtype=np.float64)
        weights = np.ones_like(popularity) if alpha == 0 else np.power(popularity, alpha)
        self.alpha = float(alpha)
        super().__init__(positives, weights, seed=seed, max_rounds=max_rounds)


def _cdf(weights: np.ndarray, n_items: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_items,):
        raise ConfigError(f"sampler weights must have one entry per item ({n_items}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError("sampler weights must be finite, non-negative and not all zero")
    return np.cumsum(w)
