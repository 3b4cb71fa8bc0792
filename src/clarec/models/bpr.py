"""Matrix factorisation trained with the BPR loss (Rendle et al., UAI 2009).

Users and items get ``embedding_dim`` vectors; a score is their dot product. Each epoch shuffles
the training (user, positive) pairs, draws negatives with :mod:`clarec.contrastive.samplers` and
minimises the BPR loss of the dot products plus an L2 penalty on the batch's embeddings
(:class:`~clarec.contrastive.bpr.DotProductBPRLoss`), through the shared training loop of
:class:`~clarec.models.torch_base.TorchRecommender` (early stopping on validation NDCG@k when
``valid`` is given).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from clarec.contrastive.bpr import DotProductBPRLoss
from clarec.contrastive.samplers import NegativeSampler, PopularityNegativeSampler, UniformNegativeSampler
from clarec.data.dataset import Dataset
from clarec.models.embedding import CFEmbeddingRecommender
from clarec.models.params import param
from clarec.models.registry import register
from clarec.train.validation import dot_scores


class MatrixFactorization(nn.Module):
    """User and item embedding tables; ``forward(users, items)`` gives dot-product scores."""

    def __init__(self, n_users: int, n_items: int, dim: int, init_std: float, generator: torch.Generator):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=init_std, generator=generator)
        nn.init.normal_(self.item.weight, std=init_std, generator=generator)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of ``items`` (shape ``(B,)`` or ``(B, n)``) for ``users`` (shape ``(B,)``)."""
        u = self.user(users)
        v = self.item(items)
        if v.dim() == 3:
            return torch.einsum("bd,bnd->bn", u, v)
        return (u * v).sum(-1)


@register("bpr")
class BPR(CFEmbeddingRecommender):
    """BPR matrix factorisation.

    Users outside training (or with new events) are folded in: the user vector is the mean of the
    history's item vectors, no retraining. BPR's gradient moves a user's vector towards the vectors of
    the items they chose, so the mean points where the trained vector does: on ML-100K (32-d, 15
    epochs, init std 0.1) the fold-in's top 20 shares 79% of its items with the trained user's top
    20, against 44% for the weighted ridge regression of implicit ALS. :attr:`history_mode` is
    ``"fold-in"``: close to :meth:`score`, not equal. Items without training interactions rank last
    (unless ``align`` maps them from their text).

    Args:
        init_std: standard deviation of the normal initialisation. The default 0.01 (0.1 until
            2026-11-29) lets the factors grow from near zero; on ML-100K 0.1 costs about 0.025
            NDCG@20 (``benchmarks/results/ml-100k-align.md``).
        neg_alpha: ``0`` samples negatives uniformly; ``> 0`` ∝ popularity ** neg_alpha.

    ``embedding_dim``, ``lr``, ``reg``, ``n_negatives``, ``align``: see
    :class:`~clarec.models.embedding.CFEmbeddingRecommender`. Training settings (``epochs`` 200,
    ``batch_size`` 2048, ``patience``, ``num_threads`` — a model this small trains fastest on one
    thread —, ``seed``, ...): see :class:`~clarec.models.torch_base.TorchRecommender`.
    """

    trains_align = True

    init_std = param(0.01, gt=0)
    neg_alpha = param(0.0, ge=0)

    # ------------------------------------------------------------------ training
    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        rng, generator = self._generators()
        module = MatrixFactorization(self.n_users, self.n_items, self.embedding_dim, self.init_std, generator)
        sampler: NegativeSampler
        if self.neg_alpha > 0:
            sampler = PopularityNegativeSampler(self.seen, alpha=self.neg_alpha, seed=rng)
        else:
            sampler = UniformNegativeSampler(self.seen, seed=rng)
        pair_users = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.seen.indptr))
        pair_items = self.seen.indices.astype(np.int64)
        bpr = DotProductBPRLoss(l2=self.reg)  # BPR plus the L2 penalty on the batch's vectors
        # Items without training interactions keep their random initial vectors: nothing is learned
        # about them, so they rank below every trained item (unless ``align`` maps them from text).
        trained = np.asarray(self.seen.sum(axis=0)).ravel() > 0
        self.unknown_items_ = ~trained if self.align is None else np.zeros(self.n_items, dtype=bool)
        aligner = self._setup_align(train, self.embedding_dim)
        bundle = module if aligner is None else nn.ModuleDict({"mf": module, "align": aligner})

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
            order = rng.permutation(len(pair_users))
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                users = pair_users[idx]
                # column 0 the positive, then the negatives: one gather of all the batch's items
                items = np.column_stack([pair_items[idx], sampler.sample(users, self.n_negatives)])
                yield torch.from_numpy(users), torch.from_numpy(items)

        def loss_fn(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            users, items = batch
            # index_select: its backward is one index_add into each table
            u = module.user.weight.index_select(0, users)
            v = module.item.weight.index_select(0, items.view(-1)).view(*items.shape, -1)
            align = self._align_loss(aligner, module.user.weight, module.item.weight, users, items[:, 0])
            return bpr(u, v) + align

        validate = None
        validator = self._validator(valid)
        if validator is not None:

            def validate() -> float:
                scores = dot_scores(module.user.weight, module.item.weight)
                return validator(lambda users: self._unknown_last(scores(users)))

        # foreach: one multi-tensor update instead of a loop over the parameters (same arithmetic)
        optimizer = torch.optim.Adam(bundle.parameters(), lr=self.lr, foreach=True)
        self._train(bundle, batches, loss_fn, optimizer, validate)
        user, item = (t.detach().cpu().numpy() for t in (module.user.weight, module.item.weight))
        self._set_vectors(user, item, valid)

    def _set_state(self, state: dict) -> None:
        # saved before 2026-12-03: the vectors were named user_factors / item_factors
        self._set_vector_state(state, "user_factors", "item_factors")
        self._set_align_state(state)
