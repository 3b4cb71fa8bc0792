"""Matrix factorisation trained with the BPR loss (Rendle et al., UAI 2009).

Users and items get ``embedding_dim`` vectors; a score is their dot product. Each epoch shuffles
the training (user, positive) pairs, draws negatives with :mod:`clarec.contrastive.samplers` and
minimises the BPR loss of the dot products plus an L2 penalty on the batch's embeddings
(:class:`~clarec.contrastive.bpr.DotProductBPRLoss`), through the shared training loop of
:class:`~clarec.models.torch_base.TorchRecommender` (early stopping on validation NDCG@k when
``valid`` is given).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from clarec.contrastive.bpr import DotProductBPRLoss
from clarec.contrastive.samplers import NegativeSampler, PopularityNegativeSampler, UniformNegativeSampler
from clarec.data.dataset import Dataset
from clarec.models._align import AlignedMixin, AlignSettings
from clarec.models.params import param
from clarec.models.registry import register
from clarec.models.torch_base import TorchRecommender


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
class BPR(AlignedMixin, TorchRecommender):
    """BPR matrix factorisation.

    Users outside training (or with new events) are folded in by :meth:`score_histories`.

    Args:
        embedding_dim: size of user and item vectors.
        lr: Adam learning rate.
        reg: L2 penalty on the batch's user, positive and negative embeddings (per example).
        n_negatives: negatives per positive.
        neg_alpha: ``0`` samples negatives uniformly; ``> 0`` ∝ popularity ** neg_alpha.
        init_std: standard deviation of the normal initialisation. The default 0.01 (0.1 until
            2026-11-29) lets the factors grow from near zero; on ML-100K 0.1 costs about 0.025
            NDCG@20 (``benchmarks/results/ml-100k-align.md``).
        align: language-model alignment, e.g. ``{weight: 0.1, temperature: 0.2}`` (see
            :mod:`clarec.models._align`); also gives items without interactions a vector from their text.

    Training settings (``epochs`` 200 by default, ``batch_size`` 2048 (user, positive) pairs per step,
    ``patience``, ``num_threads`` — a model this small trains fastest on one thread —, ``seed``, ...):
    see :class:`~clarec.models.torch_base.TorchRecommender`.
    """

    supports_histories = True
    history_mode = "fold-in"
    supports_new_items = True

    embedding_dim = param(64, ge=1)
    lr = param(1e-3, gt=0)
    reg = param(1e-4, ge=0)
    n_negatives = param(1, ge=1)
    neg_alpha = param(0.0, ge=0)
    init_std = param(0.01, gt=0)
    align = param(None, AlignSettings.parse)
    epochs = TorchRecommender.epochs.with_default(200)
    batch_size = TorchRecommender.batch_size.with_default(2048)

    def _check_params(self) -> None:
        self._init_align()

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
                u, v = module.user.weight, module.item.weight
                return validator(lambda users: self._unknown_last((u[torch.from_numpy(users)] @ v.T).numpy()))

        # foreach: one multi-tensor update instead of a loop over the parameters (same arithmetic)
        optimizer = torch.optim.Adam(bundle.parameters(), lr=self.lr, foreach=True)
        self._train(bundle, batches, loss_fn, optimizer, validate)
        self.user_factors = module.user.weight.detach().numpy().copy()
        self.item_factors = self._finish_align(module.item.weight.detach().numpy().copy())
        self._calibrate_text_items(self.user_factors, self.item_factors, valid)

    # ------------------------------------------------------------------ inference
    def score(self, users) -> np.ndarray:
        users = self._check_users(users)
        # float64 then float32: BLAS float32 sums depend on the batch shape, and a user's scores must
        # not change with the users scored alongside.
        scores = self.user_factors[users].astype(np.float64) @ self._inner_product_items(self.item_factors)[1]
        return self._unknown_last(self._apply_cold(scores).astype(np.float32))

    def _unknown_last(self, scores: np.ndarray) -> np.ndarray:
        """Each row's items without anything learned about them just below its lowest other score."""
        unknown = self.unknown_items_
        if unknown.any() and not unknown.all() and len(scores):
            scores[:, unknown] = scores[:, ~unknown].min(axis=1, keepdims=True) - 1.0
        return scores

    def score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Fold-in: the user vector is the mean of the history's item vectors; no retraining.

        BPR's gradient moves a user's vector towards the vectors of the items they chose, so the
        mean points where the trained vector does: on ML-100K (32-d, 15 epochs, init std 0.1) the
        fold-in's top 20 shares 79% of its items with the trained user's top 20, against 44% for the
        weighted ridge regression of implicit ALS. An empty history gives the zero vector (score 0 for
        every item with training interactions). Items without any rank last, as in :meth:`score`.
        :attr:`history_mode` is ``"fold-in"``: close to :meth:`score`, not equal.
        """
        return self._unknown_last(self._apply_cold(self._mean_fold_in(histories, self.item_factors)))

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """New items get the text → CF map of their text with ``align``; otherwise zero vectors (no
        interactions, no text) ranked after every trained item until the model is refitted."""
        self._check_fitted()
        n, m = self.n_items, len(items)
        new = self._new_item_vectors(items, self.item_factors.shape[1]).astype(self.item_factors.dtype)
        self.item_factors = np.vstack([self.item_factors, new])
        mapped = getattr(self, "text_map_", None) is not None
        self.unknown_items_ = np.concatenate([self.unknown_items_, np.full(m, not mapped)])
        self._grow_items(m)
        return np.arange(n, n + m, dtype=np.int64)

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_factors

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "unknown_items": self.unknown_items_,
            **self._align_state(),
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors = state["user_factors"].astype(np.float32)
        self.item_factors = state["item_factors"].astype(np.float32)
        self.unknown_items_ = np.asarray(
            state.get("unknown_items", np.zeros(len(self.item_factors))), dtype=bool
        )
        self._set_align_state(state)
