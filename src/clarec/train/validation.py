"""A small full-ranking validation metric for early stopping inside training loops.

The evaluator (``clarec.evaluate``) is the reference for reported numbers; this is the cheap,
dependency-free NDCG@k a training loop calls every few epochs: score the validation users over
the whole catalogue, mask their training items, take the top ``k`` and compare with the
held-out items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp
import torch

from clarec.ranking import top_k

__all__ = ["RankingValidator", "best_offset", "dot_scores"]


def dot_scores(queries: torch.Tensor, items: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """The score function ``rows -> queries[rows] @ items.T`` (a NumPy array) of a validation.

    On the CPU the product is NumPy's (its BLAS): for this shape — a block of users, a short inner
    dimension, the whole catalogue out — it ran 3× faster than torch's on the machine measured
    (``benchmarks/results/validation-speed.md``); elsewhere it runs on the tensors' device.
    """
    if queries.device.type == "cpu":
        q, t = queries.detach().float().numpy(), items.detach().float().numpy().T
        return lambda rows: q[rows] @ t
    return lambda rows: (queries[torch.from_numpy(rows).to(queries.device)] @ items.T).float().cpu().numpy()


class RankingValidator:
    """Mean NDCG@k (binary relevance) of a scoring function on held-out interactions.

    Args:
        seen: user × item training matrix; its items are excluded from the ranking.
        truth: user × item matrix of held-out (validation) items; users without any are skipped.
        k: cut-off.
        max_users: evaluate at most this many users (a fixed random subset) to bound the cost
            on large data sets; ``None`` uses all.
        seed: seed of that subset.
        batch_size: users scored at once.
        exclude_seen: leave the training items out of each ranking (the ``masked`` convention);
            ``False`` ranks every item (``kept``, where a repeat of a training item can be the target).
    """

    def __init__(
        self,
        seen: sp.spmatrix,
        truth: sp.spmatrix,
        k: int = 20,
        max_users: int | None = None,
        seed: int = 0,
        batch_size: int = 1024,
        exclude_seen: bool = True,
    ):
        self.seen = sp.csr_matrix(seen)
        self.exclude_seen = bool(exclude_seen)
        self.truth = sp.csr_matrix(truth)
        self.truth.sum_duplicates()
        self.k = int(k)
        self.batch_size = int(batch_size)
        users = np.flatnonzero(np.diff(self.truth.indptr) > 0)
        if max_users is not None and len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
        self.users = users
        # Ideal DCG for 1..k relevant items: discounts 1/log2(rank+1), ranks from 1.
        self._discounts = 1.0 / np.log2(np.arange(2, self.k + 2))
        self._idcg = np.concatenate([[0.0], np.cumsum(self._discounts)])

    def __call__(self, score_fn: Callable[[np.ndarray], np.ndarray]) -> float:
        """Mean NDCG@k over the validation users; ``score_fn(users) -> (len(users), n_items)``."""
        if len(self.users) == 0:
            return 0.0
        total = sum(self.batch_total(chunk, score_fn(chunk)) for chunk in self.batches())
        return total / len(self.users)

    def batches(self) -> Iterator[np.ndarray]:
        """The validation users, ``batch_size`` at a time."""
        for start in range(0, len(self.users), self.batch_size):
            yield self.users[start : start + self.batch_size]

    def batch_total(self, chunk: np.ndarray, scores: np.ndarray) -> float:
        """Sum of NDCG@k over the users ``chunk`` given their scores of every item."""
        s = np.array(scores, dtype=np.float32, copy=True)
        if self.exclude_seen:
            sub = self.seen[chunk]
            s[np.repeat(np.arange(len(chunk)), np.diff(sub.indptr)), sub.indices] = -np.inf
        idx, vals = top_k(s, self.k)
        rel = np.asarray(self.truth[chunk[:, None], idx].todense() > 0) & np.isfinite(vals)
        dcg = (rel * self._discounts[: idx.shape[1]]).sum(axis=1)
        n_rel = np.minimum(np.diff(self.truth[chunk].indptr), self.k)
        return float((dcg / self._idcg[n_rel]).sum())


def best_offset(
    validator: RankingValidator,
    score_fn: Callable[[np.ndarray], np.ndarray],
    columns: np.ndarray,
    offsets: np.ndarray,
) -> tuple[float, np.ndarray]:
    """The offset added to the scores of the items in ``columns`` (a boolean item mask) that maximises
    the validator's NDCG, and the NDCG of every offset in ``offsets`` (ties: the offset closest to 0).

    Each validation batch is scored once and ranked once per offset.
    """
    offsets = np.asarray(offsets, dtype=np.float64)
    shift = np.asarray(columns, dtype=np.float32)
    totals = np.zeros(len(offsets))
    for chunk in validator.batches():
        s = np.asarray(score_fn(chunk), dtype=np.float32)
        for i, off in enumerate(offsets):
            totals[i] += validator.batch_total(chunk, s + np.float32(off) * shift)
    curve = totals / max(1, len(validator.users))
    best = np.flatnonzero(curve >= curve.max() - 1e-12)
    return float(offsets[best[np.argmin(np.abs(offsets[best]))]]), curve
