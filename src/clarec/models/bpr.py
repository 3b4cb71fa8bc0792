"""Matrix factorisation trained with the BPR loss (Rendle et al., UAI 2009).

Users and items get ``embedding_dim`` vectors; a score is their dot product. Each epoch shuffles
the training (user, positive) pairs, draws negatives with :mod:`clarec.contrastive.samplers` and
minimises the BPR loss of the dot products (:class:`~clarec.contrastive.bpr.DotProductBPRLoss`) plus an L2 penalty on the embeddings in the
batch, through the shared :class:`~clarec.train.loop.Trainer` (early stopping on validation
NDCG@k when ``valid`` is given).
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
from clarec.errors import ConfigError
from clarec.models._align import AlignedMixin
from clarec.models.base import Recommender
from clarec.models.registry import register
from clarec.train.loop import Trainer, TrainHistory
from clarec.train.validation import RankingValidator


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
class BPR(AlignedMixin, Recommender):
    """BPR matrix factorisation.

    Users outside training (or with new events) are folded in by :meth:`score_histories`.

    Args:
        embedding_dim: size of user and item vectors.
        lr: Adam learning rate.
        reg: L2 penalty on the batch's user, positive and negative embeddings (per example).
        epochs: maximum number of epochs.
        batch_size: (user, positive) pairs per step.
        n_negatives: negatives per positive.
        neg_alpha: ``0`` samples negatives uniformly; ``> 0`` ∝ popularity ** neg_alpha.
        init_std: standard deviation of the normal initialisation. The default 0.01 (0.1 until
            2026-11-29) lets the factors grow from near zero; on ML-100K 0.1 costs about 0.025
            NDCG@20 (``benchmarks/results/ml-100k-align.md``).
        patience: validations without improvement before stopping (with ``valid`` only).
        eval_every: validate every this many epochs.
        eval_k: cut-off of the validation NDCG.
        eval_max_users: validate on at most this many users (``None``: all).
        seed: seeds initialisation, shuffling and negative sampling; same seed, same model (CPU).
        run_dir: folder for the training log, history and best checkpoint.
        progress: progress bar; ``None`` shows it only on a terminal.
        num_threads: torch threads (``None``: every core; a model this small trains fastest on one).
        align: language-model alignment, e.g. ``{weight: 0.1, temperature: 0.2}`` (see
            :mod:`clarec.models._align`); also gives items without interactions a vector from their text.
    """

    supports_histories = True
    history_mode = "fold-in"
    supports_new_items = True

    def __init__(
        self,
        embedding_dim: int = 64,
        lr: float = 1e-3,
        reg: float = 1e-4,
        epochs: int = 200,
        batch_size: int = 2048,
        n_negatives: int = 1,
        neg_alpha: float = 0.0,
        init_std: float = 0.01,
        patience: int = 10,
        eval_every: int = 1,
        eval_k: int = 20,
        eval_max_users: int | None = None,
        seed: int = 0,
        run_dir: str | None = None,
        progress: bool | None = None,
        num_threads: int | None = None,
        align: dict | None = None,
    ):
        for name, value in (
            ("embedding_dim", embedding_dim),
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("n_negatives", n_negatives),
            ("patience", patience),
            ("eval_every", eval_every),
            ("eval_k", eval_k),
        ):
            if int(value) < 1:
                raise ConfigError(f"bpr: {name} must be at least 1, got {value}")
        if not lr > 0:
            raise ConfigError(f"bpr: lr must be > 0, got {lr}")
        if not reg >= 0:
            raise ConfigError(f"bpr: reg must be >= 0, got {reg}")
        if not neg_alpha >= 0:
            raise ConfigError(f"bpr: neg_alpha must be >= 0, got {neg_alpha}")
        if not init_std > 0:
            raise ConfigError(f"bpr: init_std must be > 0, got {init_std}")
        self.embedding_dim = int(embedding_dim)
        self.lr = float(lr)
        self.reg = float(reg)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.n_negatives = int(n_negatives)
        self.neg_alpha = float(neg_alpha)
        self.init_std = float(init_std)
        self.patience = int(patience)
        self.eval_every = int(eval_every)
        self.eval_k = int(eval_k)
        self.eval_max_users = None if eval_max_users is None else int(eval_max_users)
        self.seed = int(seed)
        self.run_dir = None if run_dir is None else str(run_dir)
        self.progress = progress
        self.num_threads = None if num_threads is None else int(num_threads)
        self._init_align(align)

    # ------------------------------------------------------------------ training
    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
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
        if valid is not None and valid.n_interactions > 0:
            validator = RankingValidator(
                self.seen, valid.to_csr(), k=self.eval_k, max_users=self.eval_max_users, seed=self.seed
            )

            def score_fn(users: np.ndarray) -> np.ndarray:
                u = module.user.weight[torch.from_numpy(users)]
                return self._unknown_last((u @ module.item.weight.T).numpy())

            def validate() -> float:
                return validator(score_fn)

        trainer = Trainer(
            epochs=self.epochs,
            patience=self.patience,
            eval_every=self.eval_every,
            metric_name=f"ndcg@{self.eval_k}",
            run_dir=self.run_dir,
            progress=self.progress,
            num_threads=self.num_threads,
        )
        # foreach: one multi-tensor update instead of a loop over the parameters (same arithmetic)
        optimizer = torch.optim.Adam(bundle.parameters(), lr=self.lr, foreach=True)
        self.history_: TrainHistory = trainer.fit(bundle, batches, loss_fn, optimizer, validate)
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
