"""Graph collaborative filtering: LightGCN and its contrastive variants SGL, SimGCL, XSimGCL, and the
negatives-free BYOL-CF.

All of them learn one ``embedding_dim`` vector per user and item (the "ego" embeddings) and smooth
them over the user–item graph with LightGCN's propagation, ``E(l+1) = Â E(l)``, where ``Â`` is the
symmetrically normalised bipartite adjacency ``D^-1/2 A D^-1/2`` of the training interactions, kept as
a torch sparse CSR matrix (one sparse × dense product per layer, no Python loop over edges). The
readout is the mean of the layers.

- ``lightgcn`` (He et al., SIGIR 2020): BPR loss on the readout, L2 on the batch's ego embeddings.
- ``sgl`` (Wu et al., SIGIR 2021): plus an InfoNCE loss between two augmented graphs' readouts of the
  batch's users and items — edge dropout (``aug="ed"``), node dropout (``"nd"``) or a different edge
  dropout per layer (``"rw"``, random-walk style); the views are redrawn every epoch.
- ``simgcl`` (Yu et al., SIGIR 2022): the two views are the same graph with random noise added to
  every layer's output (``sign(e) ⊙ ε·unit-random``), no graph augmentation.
- ``xsimgcl`` (Yu et al., TKDE 2023): one noisy propagation per step; the contrast is between its
  final readout and one of its own layers (``cl_layer``).
- ``byol-cf`` (BUIR, Lee et al., SIGIR 2021, with a LightGCN encoder): no negatives at all — an online
  encoder with a predictor learns to predict an EMA target encoder's vector of an interacted item
  from the user's and vice versa (:class:`clarec.contrastive.BYOL`).

With ``align``, every model but ``byol-cf`` adds the language-model alignment of
:mod:`clarec.models._align` to its loss (and scores items without interactions from their text).

Contrastive terms use :class:`clarec.contrastive.InfoNCELoss` (cosine, ``ssl_temperature``, the other
users / items of the batch as negatives) weighted by ``ssl_weight``; the BPR term is
:class:`clarec.contrastive.BPRLoss` with negatives from :mod:`clarec.contrastive.samplers`.
Training goes through the shared :class:`~clarec.train.loop.Trainer` (early stopping on validation
NDCG@k). Scores are dot products of the final user and item vectors.

Why one file of this length: the five models share everything but their loss and views; keeping
them together shows each variant as the few lines in which it differs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive import BYOL, InfoNCELoss, UniformNegativeSampler
from clarec.contrastive.losses import BPRLoss
from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models.embedding import CFEmbeddingRecommender
from clarec.models.params import param
from clarec.models.registry import register
from clarec.train import distributed
from clarec.train.validation import dot_scores

AUGMENTATIONS = ("ed", "nd", "rw")


def normalized_adjacency(n_users: int, n_items: int, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` of the bipartite graph with edges ``(users[k], items[k])`` as a torch sparse
    CSR matrix over ``n_users + n_items`` nodes (users first). Nodes without edges keep zero rows."""
    n = n_users + n_items
    rows = np.concatenate([users, items + n_users]).astype(np.int64)
    cols = np.concatenate([items + n_users, users]).astype(np.int64)
    deg = np.bincount(rows, minlength=n).astype(np.float64)
    inv_sqrt = np.zeros(n)
    inv_sqrt[deg > 0] = deg[deg > 0] ** -0.5
    vals = (inv_sqrt[rows] * inv_sqrt[cols]).astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    m.sum_duplicates()
    return torch_csr(m)


def torch_csr(m: sp.csr_matrix) -> torch.Tensor:
    """A SciPy CSR matrix as a float32 torch sparse CSR tensor."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta": sparse × dense is all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data.astype(np.float32)),
            size=m.shape,
        )


class _ConstantSpMM(torch.autograd.Function):
    """``m @ x`` for a constant sparse ``m`` whose transpose ``m_t`` is given; backward ``m_t @ grad``.

    Autograd's own backward of a CSR product computes ``m.T @ grad`` and builds that transpose (a COO
    conversion and a sort over every entry) again at every use of every step.
    """

    @staticmethod
    def forward(ctx, m: torch.Tensor, m_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.m_t = m_t
        return torch.sparse.mm(m, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, torch.sparse.mm(ctx.m_t, grad)


def spmm(m: torch.Tensor, m_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``m @ x`` for a constant sparse ``m`` with its transpose ``m_t`` built once, in fp32 also under
    bf16 autocast (sparse products have no bf16 kernel on the CPU, and summing a node's many
    neighbours is where bf16 would lose most)."""
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        if x.requires_grad and not m.requires_grad:
            return _ConstantSpMM.apply(m, m_t, x)
        return torch.sparse.mm(m, x)


def propagate(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One propagation step ``adj @ x`` for a symmetric adjacency from :func:`normalized_adjacency`
    (its own transpose; see :func:`spmm`)."""
    return spmm(adj, adj, x)


def perturb(e: torch.Tensor, eps: float) -> torch.Tensor:
    """SimGCL's noise: ``e + sign(e) ⊙ ε·u/‖u‖`` with ``u`` uniform in [0, 1)^d, one draw per row."""
    noise = F.normalize(torch.rand_like(e), dim=-1) * eps
    return e + torch.sign(e) * noise


class GraphEmbeddings(nn.Module):
    """Ego embeddings of users and items and LightGCN propagation over a given adjacency."""

    def __init__(self, n_users: int, n_items: int, dim: int, init_std: float = 0.1):
        super().__init__()
        self.n_users = n_users
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=init_std)
        nn.init.normal_(self.item.weight, std=init_std)

    def layers(self, adjs: Sequence[torch.Tensor], eps: float = 0.0) -> list[torch.Tensor]:
        """``[E0, E1, ..., EL]``, one adjacency per layer; ``eps > 0`` perturbs every propagated layer."""
        e = torch.cat([self.user.weight, self.item.weight])
        out = [e]
        for adj in adjs:
            e = propagate(adj, e)
            if eps > 0:
                e = perturb(e, eps)
            out.append(e)
        return out

    def forward(self, nodes: torch.Tensor, adjs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer-mean readout of ``nodes`` (users ``0..U-1``, items ``U..``): BYOL-CF's encoder."""
        return torch.stack(self.layers(adjs)).mean(0)[nodes]


class _GraphRecommender(CFEmbeddingRecommender):
    """What the graph models share: the adjacency, propagation, the training loop, and fold-in
    (a new user is built from their items, as a LightGCN user vector is built from its items'; an
    empty history scores 0): fold-in propagates a history as the graph propagates a user,
    ``Σ_{i∈h} F_i / sqrt(|h|)`` with ``F_i`` the mean of item ``i``'s layers 0..L−1 over
    ``sqrt(deg i)`` (an item added after training counts its vector). Where the readout leaves the ego
    layer out (SimGCL, XSimGCL) a training user's own history gives its vector exactly (``history_mode``
    "exact"); LightGCN and SGL users also hold their own ego vector, which a new user lacks (on ML-100K
    validation this fold-in ranks better than the mean of the history's item vectors:
    ``benchmarks/results/fold-in.md``). Scoring, appended items and persistence:
    :class:`~clarec.models.embedding.CFEmbeddingRecommender`."""

    trains_align = True

    #: The layer readout includes the ego layer E0 (LightGCN, SGL) or not (SimGCL, XSimGCL).
    readout_from: ClassVar[int] = 0
    #: Fold-in propagates a history through the graph (see the class docstring); BYOL-CF's vectors
    #: are its predictor's, so its fold-in is the mean of the history's item vectors.
    fold_by_propagation: ClassVar[bool] = True
    #: fold-in's item terms (see the class docstring), else ``None``
    fold_items_: np.ndarray | None = None

    n_layers = param(3, ge=1)
    init_std = param(0.1, gt=0)

    # ------------------------------------------------------------------ hooks
    def _modules(self, graph: GraphEmbeddings) -> dict[str, nn.Module]:
        """Extra trainable modules (losses with parameters, predictors)."""
        return {}

    def _start_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Called before each epoch's batches (SGL redraws its views here)."""

    def _after_step(self) -> list[Callable[[], None]]:
        """Called after every optimiser step (BYOL-CF's target update); set up by ``_modules``."""
        return []

    def _loss(self, graph: GraphEmbeddings, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
        """The batch loss; the default is BPR on the layer-mean readout plus L2 on the ego vectors."""
        layers = graph.layers(self._adjs)
        final = self._readout(layers)
        return self._bpr(graph, final, users, pos, neg)

    def _vectors(self, graph: GraphEmbeddings) -> tuple[torch.Tensor, torch.Tensor]:
        """Final ``(user, item)`` vectors for scoring."""
        final = self._readout(graph.layers(self._adjs))
        return final[: self.n_users], final[self.n_users :]

    # ------------------------------------------------------------------ shared pieces
    def _readout(self, layers: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(layers[self.readout_from :]).mean(0)

    def _bpr(self, graph, final, users, pos, neg) -> torch.Tensor:
        if self.splits_batches_itself:  # under torchrun: this rank's slice (DDP averages the slices)
            users, pos, neg = distributed.shard(
                (users, pos, neg), distributed.rank(), distributed.world_size()
            )
        u = final[users]
        p = final[pos + self.n_users]
        n = final[neg + self.n_users]
        rec = self._bpr_loss((u * p).sum(-1), torch.einsum("bd,bnd->bn", u, n))
        ego = graph.user(users).pow(2).sum() + graph.item(pos).pow(2).sum() + graph.item(neg).pow(2).sum()
        align = self._align_loss(self._aligner, final[: self.n_users], final[self.n_users :], users, pos)
        return rec + self.reg * ego / len(users) + align

    def _contrast(self, a: torch.Tensor, b: torch.Tensor, users: torch.Tensor, pos: torch.Tensor):
        """InfoNCE between two views' vectors of the batch's distinct users and of its distinct items."""
        u = torch.unique(users)
        i = torch.unique(pos) + self.n_users
        return self._ssl(a[u], b[u]) + self._ssl(a[i], b[i])

    def _adjacency(self, keep: np.ndarray | None = None) -> torch.Tensor:
        users, items = self._edges
        if keep is not None:
            users, items = users[keep], items[keep]
        return normalized_adjacency(self.n_users, self.n_items, users, items).to(self.device_)

    # ------------------------------------------------------------------ training
    #: what training builds and the fitted model does not keep (its vectors are the model)
    _TRAINING_ONLY = ("_adjs", "_edges", "_aligner", "_bpr_loss", "_ssl", "_views", "_byol")

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        try:
            self._fit_graph(train, valid)
        finally:  # a failed fit too: a GPU run's views and BYOL networks would hold its memory
            for name in self._TRAINING_ONLY:
                self.__dict__.pop(name, None)

    def _fit_graph(self, train: Dataset, valid: Dataset | None) -> None:
        rng, _ = self._generators()
        # Items without training interactions have no edges: nothing is learned about them (their
        # vector is their random layer 0, or nothing where the readout leaves layer 0 out), so they
        # rank below every trained item (unless ``align`` maps them from text)
        trained = np.asarray(self.seen.sum(axis=0)).ravel() > 0
        self.unknown_items_ = ~trained if self.align is None else np.zeros(self.n_items, dtype=bool)
        seen = self.seen.tocoo()
        self._edges = (seen.row.astype(np.int64), seen.col.astype(np.int64))
        self._adjs = [self._adjacency()] * self.n_layers
        self._bpr_loss = BPRLoss()
        graph = GraphEmbeddings(self.n_users, self.n_items, self.embedding_dim, self.init_std)
        self._aligner = self._setup_align(train, self.embedding_dim)
        extra = {} if self._aligner is None else {"align": self._aligner}
        bundle = nn.ModuleDict({"graph": graph, **self._modules(graph), **extra})
        sampler = UniformNegativeSampler(self.seen, seed=rng)
        pair_users, pair_items = self._edges

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
            self._start_epoch(epoch, rng)
            order = rng.permutation(len(pair_users))
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                if len(idx) < 2:
                    continue
                users, pos = pair_users[idx], pair_items[idx]
                neg = sampler.sample(users, self.n_negatives)
                yield torch.from_numpy(users), torch.from_numpy(pos), torch.from_numpy(neg)

        def loss_fn(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return self._loss(graph, *batch)

        validate = None
        validator = self._validator(valid)
        if validator is not None:

            def validate() -> float:
                bundle.eval()
                with torch.no_grad():
                    u, i = self._vectors(graph)
                bundle.train()
                scores = dot_scores(u, i)
                return validator(lambda users: self._unknown_last(scores(users)))

        optimizer = torch.optim.Adam(bundle.parameters(), lr=self.lr)
        self._train(bundle, batches, loss_fn, optimizer, validate, self._after_step())
        bundle.eval()
        with torch.no_grad():
            u, i = self._vectors(graph)
            if self.fold_by_propagation:
                below = torch.stack(graph.layers(self._adjs)[: self.n_layers]).mean(0)[self.n_users :]
                degree = np.bincount(self._edges[1], minlength=self.n_items).astype(np.float64)
                scale = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
                self.fold_items_ = (below.cpu().numpy().astype(np.float64) * scale[:, None]).astype(
                    np.float32
                )
            else:
                self.fold_items_ = None
        self._set_history_mode()
        self._set_vectors(u.cpu().numpy(), i.cpu().numpy(), valid)

    def _set_history_mode(self) -> None:
        """Per instance: a training user's own history scores as the user where fold-in propagates it
        and the readout has no user embedding of its own (SimGCL, XSimGCL)."""
        exact = self.fold_items_ is not None and self.readout_from == 1
        self.history_mode = "exact" if exact else type(self).history_mode

    def _history_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        fold = getattr(self, "fold_items_", None)
        if fold is None:
            return super()._history_vectors(histories)
        x = self._history_matrix(histories)  # each history's distinct items, 0/1 (the graph's edges)
        size = np.sqrt(np.maximum(x.getnnz(axis=1), 1))[:, None]
        return (np.asarray(x.astype(np.float64) @ fold.astype(np.float64)) / size).astype(np.float32)

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        new = super().add_items(items)
        if getattr(self, "fold_items_", None) is not None:
            self.fold_items_ = np.vstack([self.fold_items_, self.item_vecs[new]])
        return new

    def _get_state(self) -> dict[str, np.ndarray]:
        state = super()._get_state()
        if getattr(self, "fold_items_", None) is not None:
            state["fold_items"] = self.fold_items_
        return state

    def _set_state(self, state: dict) -> None:
        super()._set_state(state)
        # saved before 2026-12-07: fold-in takes the mean of the history's item vectors
        self.fold_items_ = (
            np.asarray(state["fold_items"], dtype=np.float32) if "fold_items" in state else None
        )
        self._set_history_mode()


@register("lightgcn")
class LightGCN(_GraphRecommender):
    """LightGCN: propagation only (no transforms, no non-linearity), layer-mean readout, BPR loss.

    Args:
        embedding_dim: size of the ego and final vectors.
        n_layers: propagation layers.
        lr: Adam learning rate.
        reg: L2 penalty on the batch's ego embeddings (per example).
        epochs: maximum epochs.
        batch_size: (user, positive) pairs per step.
        n_negatives: uniformly sampled negatives per positive.
        init_std: standard deviation of the normal initialisation.
        patience, eval_every, eval_k, eval_max_users: early stopping on validation NDCG@k.
        min_epochs: no early stop before this epoch (XSimGCL's validation NDCG dips for its first
            epochs on ML-100K; patience alone can stop inside the dip).
        seed: same seed, same model (CPU).
        run_dir: training log folder.
        progress: progress bars (``None``: only on a terminal).
        num_threads: torch threads (``None``: every core).
        align: language-model alignment, e.g. ``{weight: 0.1, temperature: 0.2}`` (see
            :mod:`clarec.models._align`; also for ``sgl``, ``simgcl``, ``xsimgcl``): an auxiliary loss
            tying each user's and item's final vector to the LM vector of its text, and a text → CF map
            that gives items without interactions (cold start, :meth:`add_items`) a vector.
    """


class _ContrastiveGraph(_GraphRecommender):
    """Shared parameters of the graph models with an InfoNCE term.

    Under torchrun every rank gets the whole batch: the BPR term is taken on the rank's slice and the
    InfoNCE term on all the batch's users and items (every rank propagates the whole graph anyway),
    so the contrast keeps the whole batch's negatives, as one process has them."""

    splits_batches_itself = True

    ssl_weight = param(0.1, ge=0)
    ssl_temperature = param(0.2, gt=0)

    def _modules(self, graph: GraphEmbeddings) -> dict[str, nn.Module]:
        self._ssl = InfoNCELoss(temperature=self.ssl_temperature, mask_duplicates=False)
        return {}


@register("sgl")
class SGL(_ContrastiveGraph):
    """SGL: LightGCN plus InfoNCE between two augmented graphs (see the module docstring).

    Args (beyond :class:`LightGCN`'s):
        aug: ``"ed"`` edge dropout, ``"nd"`` node dropout, ``"rw"`` edge dropout redrawn per layer.
        drop_ratio: share of edges (or nodes) dropped in each view.
        ssl_weight: weight of the contrastive term.
        ssl_temperature: its InfoNCE temperature.
    """

    aug = param("ed", choices=AUGMENTATIONS)
    drop_ratio = param(0.1, ge=0, lt=1)

    def view(self, rng: np.random.Generator) -> list[torch.Tensor]:
        """One augmented graph: an adjacency per layer."""
        n_edges = len(self._edges[0])
        if self.aug == "nd":
            keep_user = rng.random(self.n_users) >= self.drop_ratio
            keep_item = rng.random(self.n_items) >= self.drop_ratio
            adj = self._adjacency(keep_user[self._edges[0]] & keep_item[self._edges[1]])
            return [adj] * self.n_layers
        if self.aug == "ed":
            return [self._adjacency(rng.random(n_edges) >= self.drop_ratio)] * self.n_layers
        return [self._adjacency(rng.random(n_edges) >= self.drop_ratio) for _ in range(self.n_layers)]

    def _start_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        self._views = (self.view(rng), self.view(rng))

    def _loss(self, graph, users, pos, neg):
        final = self._readout(graph.layers(self._adjs))
        a = self._readout(graph.layers(self._views[0]))
        b = self._readout(graph.layers(self._views[1]))
        return self._bpr(graph, final, users, pos, neg) + self.ssl_weight * self._contrast(a, b, users, pos)


@register("simgcl")
class SimGCL(_ContrastiveGraph):
    """SimGCL: LightGCN plus InfoNCE between two noise-perturbed propagations (no graph augmentation).

    Args (beyond :class:`LightGCN`'s):
        eps: norm of the noise added to every propagated layer.
        ssl_weight: weight of the contrastive term.
        ssl_temperature: its InfoNCE temperature.
    """

    readout_from = 1

    eps = param(0.1, ge=0)
    ssl_weight = _ContrastiveGraph.ssl_weight.with_default(0.2)

    def _loss(self, graph, users, pos, neg):
        final = self._readout(graph.layers(self._adjs))
        a = self._readout(graph.layers(self._adjs, self.eps))
        b = self._readout(graph.layers(self._adjs, self.eps))
        return self._bpr(graph, final, users, pos, neg) + self.ssl_weight * self._contrast(a, b, users, pos)


@register("xsimgcl")
class XSimGCL(_ContrastiveGraph):
    """XSimGCL: one noisy propagation; its readout is both the recommendation vector and one side of
    the contrast, the other side being its layer ``cl_layer``.

    Args (beyond :class:`LightGCN`'s):
        eps: norm of the noise added to every propagated layer.
        cl_layer: the layer contrasted with the final readout (1 .. n_layers).
        ssl_weight: weight of the contrastive term.
        ssl_temperature: its InfoNCE temperature.
    """

    readout_from = 1

    eps = param(0.2, ge=0)
    cl_layer = param(1, ge=1)
    ssl_weight = _ContrastiveGraph.ssl_weight.with_default(0.2)

    def _check_params(self) -> None:
        super()._check_params()
        if self.n_layers < 2:
            raise ConfigError(
                "xsimgcl: n_layers must be at least 2 (with one layer the final vectors are the layer "
                "they are contrasted with: the two views are the same)"
            )
        if self.cl_layer > self.n_layers:
            raise ConfigError(
                f"xsimgcl: cl_layer must be in 1..n_layers ({self.n_layers}), got {self.cl_layer}"
            )

    def _loss(self, graph, users, pos, neg):
        layers = graph.layers(self._adjs, self.eps)
        final = self._readout(layers)
        contrast = self._contrast(final, layers[self.cl_layer], users, pos)
        return self._bpr(graph, final, users, pos, neg) + self.ssl_weight * contrast


@register("byol-cf")
class BYOLCF(_GraphRecommender):
    """Negatives-free CF (BUIR with a LightGCN encoder): for each interaction, the online encoder plus
    predictor learns to predict the EMA target encoder's vector of the item from the user's and of the
    user from the item's; no negatives, no sampler. Score ``q(f(u))·f(i) + f(u)·q(f(i))`` as in BUIR.

    Fold-in (:meth:`score_histories`) is the mean of the history's item vectors ``[f(i), q(f(i))]``:
    training makes ``q(f(u))`` predict ``f(i)`` and ``q(f(i))`` predict ``f(u)`` for the user's items,
    so the mean estimates the user's query ``[q(f(u)), f(u)]`` without the predictor.

    Args (beyond :class:`LightGCN`'s, where ``reg`` and ``n_negatives`` are unused):
        momentum: EMA rate of the target encoder, ``ξ ← momentum·ξ + (1 - momentum)·θ`` (the name
            :class:`clarec.contrastive.BYOL` and encoder adaptation use too).
        predictor_hidden: hidden width of the predictor MLP.
    """

    fold_by_propagation = False

    momentum = param(0.995, ge=0, le=1)
    predictor_hidden = param(128, ge=1)
    n_layers = _GraphRecommender.n_layers.with_default(2)

    def _check_params(self) -> None:
        if self.align is not None:
            raise ConfigError(
                "byol-cf: align is not supported (it has no BPR term to add it to); "
                "use lightgcn, sgl, simgcl or xsimgcl"
            )

    def _after_step(self) -> list[Callable[[], None]]:
        return [self._byol.update_target]  # the target's EMA after every optimiser step

    def _modules(self, graph: GraphEmbeddings) -> dict[str, nn.Module]:
        self._byol = BYOL(graph, self.embedding_dim, self.predictor_hidden, momentum=self.momentum)
        self._byol.to(self.device_)
        # The online encoder is `graph` itself (registered under "graph"): only the rest is extra.
        # The EMA target joins the bundle (no gradient: the optimiser never steps it) so that a
        # checkpoint holds it and a resumed fit goes on from its averaged weights, not a fresh copy.
        return {"predictor": self._byol.predictor, "target": self._byol.target}

    def _loss(self, graph, users, pos, neg):
        u = {"nodes": users, "adjs": self._adjs}
        i = {"nodes": pos + self.n_users, "adjs": self._adjs}
        return self._byol.loss(u, i)

    def _vectors(self, graph: GraphEmbeddings) -> tuple[torch.Tensor, torch.Tensor]:
        final = torch.stack(graph.layers(self._adjs)).mean(0)
        pred = self._byol.predictor(final)
        u, i = final[: self.n_users], final[self.n_users :]
        pu, pi = pred[: self.n_users], pred[self.n_users :]
        # One dot product: [q(f(u)), f(u)] · [f(i), q(f(i))].
        return torch.cat([pu, u], dim=1), torch.cat([i, pi], dim=1)
