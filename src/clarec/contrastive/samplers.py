"""Negative samplers: draw items a user did not interact with, vectorised over a batch.

Three sources of negatives for contrastive and pairwise losses:

- :class:`UniformNegativeSampler` / :class:`PopularityNegativeSampler` (``popularity ** alpha``);
- in-batch negatives, made trustworthy by :class:`NoDuplicateBatchSampler` (no item twice per batch);
- :class:`HardNegativeMiner`, which ranks items by the current model's vectors.

A sampler draws candidates from a fixed item distribution (uniform, or popularity to the power
``alpha``) and redraws, for the whole batch at once, only the draws that hit one of the user's
training positives (rejection sampling). Randomness comes only from the sampler's own
``numpy.random.Generator``, so the same seed gives the same negatives.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Sampler

from clarec.errors import ConfigError

__all__ = [
    "HardNegativeMiner",
    "NegativeSampler",
    "NoDuplicateBatchSampler",
    "PopularityNegativeSampler",
    "UniformNegativeSampler",
]

SeedLike = int | np.random.Generator | None
#: Largest user × item matrix a sampler also keeps as a dense boolean array (32 MB).
_DENSE_CELLS = 1 << 25


class NegativeSampler:
    """Samples negatives from ``weights`` (one non-negative weight per item), avoiding positives.

    Args:
        positives: user × item matrix whose non-zeros are each user's positives (training only).
        weights: unnormalised sampling weight of each item; ``None`` means uniform.
        seed: an int seed or a ``numpy.random.Generator``.
        max_rounds: redraw rounds for draws that hit a positive. Draws still colliding afterwards
            are kept: they only remain for users whose positives hold almost all of the sampling
            weight (almost every item under uniform draws; under popularity weights, the few most
            popular ones may be enough), where no number of rounds would help much and an endless
            loop would hang training.
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
        pos.eliminate_zeros()  # a stored 0 is no positive, for the dense lookup and the keys alike
        self.n_users, self.n_items = pos.shape
        rows = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(pos.indptr))
        # One sorted int64 key per (user, item) pair, so membership is a vectorised binary search.
        self._keys = rows * self.n_items + pos.indices.astype(np.int64)
        # Small enough user × item matrices are also kept dense: a lookup beats the binary search.
        self._dense = pos.toarray().astype(bool) if self.n_users * self.n_items <= _DENSE_CELLS else None
        self._cdf = None if weights is None else _cdf(weights, self.n_items)
        # Equal weights on a subset of the items (e.g. only items with training interactions): draw
        # uniformly from that subset instead of inverting the CDF.
        self._support = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            nonzero = np.flatnonzero(w > 0)
            if len(nonzero) and np.all(w[nonzero] == w[nonzero[0]]):
                self._support = nonzero
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.max_rounds = int(max_rounds)

    def _draw(self, size: int) -> np.ndarray:
        if self._cdf is None:
            return self.rng.integers(0, self.n_items, size=size, dtype=np.int64)
        if self._support is not None:  # the same uniform numbers as the CDF inversion would use
            pick = (self.rng.random(size) * len(self._support)).astype(np.int64)
            return self._support[np.minimum(pick, len(self._support) - 1)]
        # searchsorted on the CDF is the vectorised inverse-transform draw; "right" skips items of
        # zero weight, whose CDF step is empty.
        u = self.rng.random(size) * self._cdf[-1]
        return np.minimum(np.searchsorted(self._cdf, u, side="right"), self.n_items - 1)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean mask: whether each ``(users[i], items[i])`` pair is a positive."""
        if len(self._keys) == 0:
            return np.zeros(np.shape(items), dtype=bool)
        if self._dense is not None:
            return self._dense[np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)]
        q = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._keys, q), len(self._keys) - 1)
        return self._keys[pos] == q

    def log_prob(self, items: np.ndarray) -> np.ndarray:
        """Log probability of drawing each item from the proposal distribution (before rejecting a
        user's positives): the ``log q`` of sampled-softmax / log-q corrected InfoNCE."""
        items = np.asarray(items, dtype=np.int64)
        if self._cdf is None:
            return np.full(items.shape, -math.log(self.n_items))
        weights = np.diff(self._cdf, prepend=0.0)
        with np.errstate(divide="ignore"):  # items of weight zero are never drawn: log 0 = -inf
            return np.log(weights[items] / self._cdf[-1])

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


class NoDuplicateBatchSampler(Sampler[list[int]]):
    """Batches of example indices in which no item id occurs twice, so in-batch negatives are true
    negatives. Use as ``DataLoader(dataset, batch_sampler=NoDuplicateBatchSampler(...))``.

    Each epoch shuffles the examples and places them one by one, first-fit: an example goes to the
    first batch that is not full and comes after every batch already holding one of its ids. Every
    example appears exactly once per epoch, so some batches may be smaller than ``batch_size``: an item
    in ``f`` examples needs at least ``f`` batches, and on skewed data the last batches of an epoch
    hold few examples each; ``drop_last`` drops batches shorter than ``batch_size`` instead. The cost is
    linear in the number of (example, id) pairs (about 2 s per million examples here).

    Args:
        item_ids_per_example: the ids that must stay unique within a batch, per example: a 1-D array
            (one id per example), a 2-D array (e.g. query item and positive item of item-item pairs)
            or a sequence of iterables (ragged). One example may repeat its own id (a self-pair).
        batch_size: the largest batch.
        seed: base seed; epoch ``e`` shuffles with ``(seed, e)``. The epoch counter advances on each
            iteration and can be set with ``set_epoch`` (e.g. when resuming).
        drop_last: drop batches shorter than ``batch_size``.

    ``len()`` is the number of batches without clashes (``⌈n / batch_size⌉``, or ``⌊n / batch_size⌋``
    with ``drop_last``); with clashes an epoch can hold more (or, with ``drop_last``, fewer) batches.
    """

    def __init__(
        self,
        item_ids_per_example: np.ndarray | Sequence[Iterable[int]],
        batch_size: int,
        seed: int | None = None,
        drop_last: bool = False,
    ):
        super().__init__()
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.drop_last = int(batch_size), bool(drop_last)
        self.seed = 0 if seed is None else int(seed)
        self.epoch = 0
        # Python tuples: the placement below is a per-example loop, where dict look-ups with small
        # tuples beat numpy calls on one-element arrays by a wide margin.
        if isinstance(item_ids_per_example, np.ndarray | torch.Tensor):
            arr = np.asarray(item_ids_per_example)
            if arr.ndim not in (1, 2):
                raise ConfigError(f"item ids per example must be 1-D or 2-D, got shape {arr.shape}")
            self._ids = [(x,) for x in arr.tolist()] if arr.ndim == 1 else [tuple(r) for r in arr.tolist()]
        else:
            self._ids = [tuple(x) if isinstance(x, Iterable) else (x,) for x in item_ids_per_example]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self._ids)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batches(self, epoch: int) -> list[list[int]]:
        """All batches of epoch ``epoch``, in order."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        batches: list[list[int]] = []
        last: dict = {}  # id -> index of the last batch holding it
        # next_open[b] leads (union-find, path-compressed) to the first batch >= b that is not full, so
        # skipping full batches costs almost nothing however many there are
        next_open: list[int] = []
        for idx in rng.permutation(len(self._ids)).tolist():
            ids = self._ids[idx]
            b = max((last.get(x, -1) + 1 for x in ids), default=0)
            path = []
            while b < len(next_open) and next_open[b] != b:
                path.append(b)
                b = next_open[b]
            for p in path:
                next_open[p] = b
            while b >= len(batches):
                batches.append([])
                next_open.append(len(next_open))
            batches[b].append(idx)
            for x in ids:
                last[x] = b
            if len(batches[b]) == self.batch_size:
                next_open[b] = b + 1
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == self.batch_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        yield from self.batches(epoch)


class HardNegativeMiner:
    """Hard negatives: items the current model scores highest for a query, excluding its positives.

    Items are ranked by ``query · item`` (cosine with ``normalize=True``) with the query's positives
    removed; ``n_neg`` negatives are drawn uniformly, without replacement when enough are available,
    from ranks ``[rank_start, rank_end)``. Starting below the very top (``rank_start > 0``) skips the
    items most likely to be unlabelled positives (false negatives). Scores are computed in chunks of
    ``chunk_size`` queries (one ``chunk_size × n_items`` matrix at a time) without gradients.

    If a query has no candidate in the window (fewer than ``rank_start`` non-positive items) the
    window widens to ranks ``[0, rank_end)``; if every item is a positive, random items are returned
    (unavoidably positives, as :class:`NegativeSampler` does).
    """

    def __init__(
        self,
        n_neg: int = 1,
        rank_start: int = 0,
        rank_end: int = 100,
        chunk_size: int = 256,
        normalize: bool = False,
        seed: int | None = None,
    ):
        if int(n_neg) < 1:
            raise ConfigError(f"n_neg must be >= 1, got {n_neg}")
        if not 0 <= int(rank_start) < int(rank_end):
            raise ConfigError(f"need 0 <= rank_start < rank_end, got [{rank_start}, {rank_end})")
        if int(chunk_size) < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        self.n_neg, self.rank_start, self.rank_end = int(n_neg), int(rank_start), int(rank_end)
        self.chunk_size, self.normalize = int(chunk_size), bool(normalize)
        self.generator = torch.Generator().manual_seed(0 if seed is None else int(seed))

    @torch.no_grad()
    def mine(
        self,
        queries: torch.Tensor,
        items: torch.Tensor,
        positives: sp.spmatrix | np.ndarray | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Negative item indices ``(Q, n_neg)`` (int64, on ``items``' device).

        Args:
            queries: query (user) vectors ``(Q, d)``.
            items: item vectors ``(I, d)``.
            positives: what to exclude per query: a sparse ``(Q, I)`` matrix whose non-zeros are the
                query's positives (e.g. ``train_csr[batch_users]``), a 1-D ``(Q,)`` array of one positive
                per query, or a 2-D ``(Q, m)`` array padded with ``-1``.
        """
        if queries.dim() != 2 or items.dim() != 2 or queries.shape[1] != items.shape[1]:
            raise ValueError(
                f"need queries (Q, d) and items (I, d), got {tuple(queries.shape)}, {tuple(items.shape)}"
            )
        n_queries, n_items = len(queries), len(items)
        excluded = _as_csr(positives, n_queries, n_items)
        if self.normalize:
            queries, items = _normalize(queries), _normalize(items)
        top = min(self.rank_end, n_items)
        out = []
        for a in range(0, n_queries, self.chunk_size):
            b = min(a + self.chunk_size, n_queries)
            scores = queries[a:b].float() @ items.float().T
            lo, hi = excluded.indptr[a], excluded.indptr[b]
            if hi > lo:
                rows = np.repeat(np.arange(b - a), np.diff(excluded.indptr[a : b + 1]))
                cols = excluded.indices[lo:hi]
                scores[
                    torch.from_numpy(rows).to(scores.device), torch.from_numpy(cols).to(scores.device)
                ] = -math.inf
            values, ranked = torch.topk(scores, top, dim=1)
            out.append(self._draw(values.cpu(), ranked.cpu(), n_items))
        if not out:
            return torch.empty((0, self.n_neg), dtype=torch.long, device=items.device)
        return torch.cat(out).to(items.device)

    def _draw(self, values: torch.Tensor, ranked: torch.Tensor, n_items: int) -> torch.Tensor:
        rows, width = ranked.shape
        col = torch.arange(width)[None, :]
        allowed = torch.isfinite(values)
        valid = allowed & (col >= self.rank_start)
        widen = ~valid.any(dim=1, keepdim=True)  # nothing left in the window: take the top instead
        valid = torch.where(widen, allowed, valid)
        count = valid.sum(dim=1)
        # without replacement: the n_neg valid columns with the smallest random keys
        keys = torch.rand(rows, width, generator=self.generator).masked_fill(~valid, 2.0)
        take = min(self.n_neg, width)
        picked = torch.argsort(keys, dim=1)[:, :take]
        if take < self.n_neg:
            picked = torch.cat([picked, picked[:, :1].expand(rows, self.n_neg - take)], dim=1)
        # with replacement where fewer than n_neg are valid: the j-th valid column, j uniform
        valid_first = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)
        j = (torch.rand(rows, self.n_neg, generator=self.generator) * count[:, None].clamp_min(1)).long()
        with_replacement = torch.gather(valid_first, 1, j)
        picked = torch.where((count >= self.n_neg)[:, None], picked, with_replacement)
        negatives = torch.gather(ranked, 1, picked)
        hopeless = count == 0  # every item is a positive
        if hopeless.any():
            negatives[hopeless] = torch.randint(
                n_items, (int(hopeless.sum()), self.n_neg), generator=self.generator
            )
        return negatives


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def _as_csr(
    positives: sp.spmatrix | np.ndarray | torch.Tensor | None, n_queries: int, n_items: int
) -> sp.csr_matrix:
    if positives is None:
        return sp.csr_matrix((n_queries, n_items), dtype=np.int8)
    if sp.issparse(positives):
        csr = sp.csr_matrix(positives)
        if csr.shape != (n_queries, n_items):
            raise ValueError(f"positives must be (Q, I) = ({n_queries}, {n_items}), got {csr.shape}")
        csr.sort_indices()
        return csr
    arr = np.asarray(positives.cpu() if isinstance(positives, torch.Tensor) else positives, dtype=np.int64)
    arr = arr.reshape(-1, 1) if arr.ndim == 1 else arr
    if arr.ndim != 2 or len(arr) != n_queries:
        raise ValueError(f"positives must have one row per query ({n_queries}), got shape {arr.shape}")
    rows, cols = np.nonzero(arr >= 0)
    items = arr[rows, cols]
    if np.any(items >= n_items):
        raise ValueError(f"positive item index out of range [0, {n_items})")
    return sp.csr_matrix((np.ones(len(items), dtype=np.int8), (rows, items)), shape=(n_queries, n_items))
