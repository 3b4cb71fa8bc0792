"""AlphaRec: language-model vectors mapped by a small MLP, smoothed over the user-item graph, trained
with InfoNCE (Sheng et al., "Language Representations Can be What Recommenders Need", ICLR 2025).

There are no ID embeddings: an item's ego vector is ``MLP(text vector)`` and a user's is ``MLP(mean of
their training items' text vectors)``; LightGCN's parameter-free propagation
(:func:`clarec.models.graph.propagate`) over the training graph gives the final vectors (layer mean),
and :class:`~clarec.contrastive.InfoNCELoss` (cosine over ``temperature``) contrasts each (user,
positive item) pair with ``n_negatives`` uniformly sampled items — as in the paper, not with the batch's
other positives, which are drawn by popularity and would push popular items down. Scores are
cosines. Because every vector comes from text, an item without interactions — in the catalogue at
training time or added later (:meth:`AlphaRec.add_items`) — is ranked from its text at once; a user
unseen in training is the mean of their items' final vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive import InfoNCELoss, UniformNegativeSampler
from clarec.data.dataset import Dataset
from clarec.models._lm import ItemTextParams, model_text_vectors
from clarec.models.embedding import EmbeddingModel
from clarec.models.graph import normalized_adjacency, propagate, spmm, torch_csr
from clarec.models.params import param
from clarec.models.registry import register
from clarec.models.torch_base import TorchRecommender
from clarec.train.validation import dot_scores


@register("alpharec")
class AlphaRec(ItemTextParams, EmbeddingModel, TorchRecommender):
    """See the module docstring.

    Hyper-parameters:
        fields, encoder, cache_dir, max_length: the item text and its model, as for ``lm-content``.
        embedding_dim: size of the final vectors; hidden: width of the MLP's hidden layer (1536, the
            paper's width for its main language model).
        n_layers: propagation layers.
        temperature: of the cosine InfoNCE; n_negatives: sampled negatives per pair;
        in_batch_negatives: also contrast with the batch's other positives (off in the paper).
        lr: Adam.

    Training settings (``epochs`` 200, ``batch_size`` 4096 pairs): see
    :class:`~clarec.models.torch_base.TorchRecommender`.
    """

    supports_histories = True
    history_mode = "fold-in"
    supports_new_items = True
    new_items_from_text = True

    embedding_dim = param(64, ge=1)
    hidden = param(1536, ge=1)
    n_layers = param(2, ge=0)
    temperature = param(0.15, gt=0)
    n_negatives = param(256, ge=1)
    in_batch_negatives = param(False)
    lr = param(5e-4, gt=0)
    epochs = TorchRecommender.epochs.with_default(200)
    batch_size = TorchRecommender.batch_size.with_default(4096)

    def _mlp(self, d_in: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(d_in, self.hidden), nn.LeakyReLU(), nn.Linear(self.hidden, self.embedding_dim)
        )

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        rng, _ = self._generators()
        self.text_fields_ = None  # chosen anew from this training table
        item_text = torch.from_numpy(model_text_vectors(self, train.items).astype(np.float32)).to(
            self.device_
        )
        # A user's text vector is the mean of their items'; the MLP's first layer is linear, so it is
        # applied to the items only and averaged: a sparse product over the training pairs instead
        # of the widest dense product over every user (the gain grows as users outnumber items).
        counts = np.asarray(self.seen.sum(axis=1)).ravel()
        means = sp.csr_matrix(sp.diags(1.0 / np.maximum(counts, 1)) @ self.seen)
        user_mean = torch_csr(means).to(self.device_)
        user_mean_t = torch_csr(means.T.tocsr()).to(self.device_)
        empty = torch.from_numpy(np.flatnonzero(counts == 0)).to(self.device_)
        coo = self.seen.tocoo()
        pair_users, pair_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        adj = normalized_adjacency(self.n_users, self.n_items, pair_users, pair_items).to(self.device_)
        self.mlp_ = self._mlp(item_text.shape[1])
        # cosine: the tables are made unit length once per step (below); each pair's sampled
        # negatives are read from the batch's scores against every item (negative_rows) rather than
        # gathered as batch_size × n_negatives vectors
        infonce = InfoNCELoss(self.temperature, normalize=False, in_batch=self.in_batch_negatives)
        sampler = UniformNegativeSampler(self.seen, seed=rng)

        def final() -> tuple[torch.Tensor, torch.Tensor]:
            first, rest = self.mlp_[0], self.mlp_[1:]
            items = first(item_text)
            users = spmm(user_mean, user_mean_t, items)  # (mean of x) W + b = mean of (x W + b)
            if len(empty):  # no training items: the mean text vector is zero, its first layer the bias
                users = users.index_add(0, empty, first.bias.expand(len(empty), -1))
            e = torch.cat([rest(users), rest(items)])
            layers = [e]
            for _ in range(self.n_layers):
                layers.append(propagate(adj, layers[-1]))
            out = torch.stack(layers).mean(0)
            return out[: self.n_users], out[self.n_users :]

        def batches(epoch: int):
            order = rng.permutation(len(pair_users))
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                if len(idx) >= 2:
                    users = pair_users[idx]
                    yield (
                        torch.from_numpy(users),
                        torch.from_numpy(pair_items[idx]),
                        torch.from_numpy(sampler.sample(users, self.n_negatives)),
                    )

        def loss_fn(batch) -> torch.Tensor:
            users, pos, neg = batch
            u, i = (F.normalize(x, dim=-1) for x in final())
            return infonce(
                u[users], i[pos], i, query_ids=users, positive_ids=pos, negative_ids=neg, negative_rows=neg
            )

        validator = self._validator(valid)
        validate = None
        if validator is not None:

            def validate() -> float:
                u, i = (F.normalize(x, dim=-1) for x in final())
                return validator(dot_scores(u, i))

        self._train(
            self.mlp_, batches, loss_fn, torch.optim.Adam(self.mlp_.parameters(), lr=self.lr), validate
        )
        self.mlp_.eval()
        with torch.no_grad():
            u, i = (F.normalize(x, dim=-1).cpu().numpy() for x in final())
        self.mlp_.cpu()  # new items' text is mapped on the CPU
        self.user_vecs, self.item_vecs = u.astype(np.float32), i.astype(np.float32)

    def _history_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The mean of the history's item vectors; an empty history is what a training user without
        items is (the MLP of a zero text vector, which propagation leaves alone), not no vector."""
        users = super()._history_vectors(histories)
        empty = [r for r, h in enumerate(histories) if len(h) == 0]
        if empty:
            with torch.no_grad():
                first, rest = self.mlp_[0], self.mlp_[1:]
                users[empty] = F.normalize(rest(first.bias[None]), dim=-1).numpy()
        return users

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """New items get the MLP of their text (an item without edges keeps its ego vector's direction)."""
        self._check_fitted()
        with torch.no_grad():
            vectors = F.normalize(
                self.mlp_(torch.from_numpy(model_text_vectors(self, items, new=True))), dim=-1
            ).numpy()
        n, m = self.n_items, len(items)
        self.item_vecs = np.vstack([self.item_vecs, vectors.astype(np.float32)])
        self._grow_items(m)
        return np.arange(n, n + m, dtype=np.int64)

    def _get_state(self) -> dict[str, np.ndarray]:
        weights = {f"mlp.{k}": v.detach().numpy() for k, v in self.mlp_.state_dict().items()}
        return {**self._vector_state(), **weights, "text_fields": np.asarray(self.text_fields_, dtype=str)}

    def _set_state(self, state: dict) -> None:
        self._set_vector_state(state)
        self.text_fields_ = [str(f) for f in state["text_fields"]]
        self.mlp_ = self._mlp(state["mlp.0.weight"].shape[1])
        self.mlp_.load_state_dict(
            {k[4:]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith("mlp.")}
        )
        self.mlp_.eval()
