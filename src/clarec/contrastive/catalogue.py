"""Losses of a query against the whole item catalogue: next-item prediction's objectives.

:class:`CatalogueSoftmaxLoss` is the full-softmax cross-entropy — InfoNCE where every item of the
catalogue is a negative, so no sample has to be drawn and no false negative from the batch enters —
the loss SASRec-CE and most recent sequential recommenders train with. :class:`SampledBCELoss` is the
original SASRec objective: a logistic loss on the positive and on sampled negatives.

On the CPU the full softmax runs as one autograd function on NumPy arrays (:class:`_CatalogueCE`):
it keeps the exponentials of one forward pass for the backward one, which then needs no pass over
the ``(queries × items)`` matrix besides its two products, and it multiplies with NumPy's BLAS, faster
than torch's for this shape on the machine measured: forward and backward take 0.42× the time of
torch's cross-entropy on the product (``benchmarks/results/catalogue-loss-speed.md``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive._reduce import check_reduction, reduce
from clarec.contrastive.temperature import Temperature, as_temperature

__all__ = ["CatalogueSoftmaxLoss", "SampledBCELoss"]


class CatalogueSoftmaxLoss(nn.Module):
    """Cross-entropy of each query's target among every item: ``-log softmax(q·Eᵀ / τ)[target]``.

    Args:
        temperature: a number (fixed τ; 1 is the plain cross-entropy) or a
            :class:`~clarec.contrastive.temperature.Temperature` module.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (one loss per query).

    ``forward(queries (N, d), items (n_items, d), targets (N,), exclude=None)``: dot products, no
    normalisation. ``exclude``: ``(rows, items)``, two equal-length index tensors of (query, item)
    pairs left out of the softmax — e.g. each query's history, which a protocol that never ranks
    history items does not need pushed down; a pair naming the query's own target is ignored.
    """

    def __init__(self, temperature: float | Temperature = 1.0, reduction: str = "mean"):
        super().__init__()
        self.temperature = as_temperature(temperature)
        self.reduction = check_reduction(reduction)

    def forward(
        self,
        queries: torch.Tensor,
        items: torch.Tensor,
        targets: torch.Tensor,
        exclude: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        # τ scales the (N, d) queries rather than the (N, n_items) logits: one pass less over the
        # largest tensor of a step, forward and backward (the same numbers at τ = 1)
        queries = queries / self.temperature.value
        if len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= len(items)):
            raise IndexError(f"targets must be item rows in [0, {len(items)})")
        if exclude is not None:
            rows, cols = exclude
            if rows.shape != cols.shape or rows.dim() != 1:
                raise ValueError("exclude must be two 1-d index tensors of equal length")
            drop = cols != targets[rows]
            exclude = (rows[drop], cols[drop])
        if queries.device.type == "cpu" and queries.dtype == items.dtype == torch.float32:
            losses = _CatalogueCE.apply(queries, items, targets, exclude)
        else:
            logits = queries @ items.T
            if exclude is not None:
                logits = logits.index_put(exclude, logits.new_tensor(-torch.inf))
            losses = F.cross_entropy(logits, targets, reduction="none")
        return reduce(losses, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _CatalogueCE(torch.autograd.Function):
    """``-log softmax(q·Eᵀ)[y]`` per query (float32 CPU tensors), forward and backward on NumPy.

    Forward keeps ``e = exp(q·Eᵀ - max)`` and its row sums ``s``; with ``g`` the incoming gradient
    and ``w = g / s``, the backward is ``∂q = w·(e E) - g·E[y]`` and ``∂E = eᵀ(w·q) - Σ g·q`` at the
    targets' rows: the softmax's division and the target's one-hot act on ``(N, d)`` products,
    never on the ``(N, n_items)`` matrix.
    """

    @staticmethod
    def forward(
        ctx, queries: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, exclude
    ) -> torch.Tensor:
        q, table, y = (
            queries.detach().contiguous().numpy(),
            items.detach().contiguous().numpy(),
            targets.numpy(),
        )
        e = q @ table.T
        picked = e[np.arange(len(y)), y]
        if exclude is not None:  # out of the softmax (and of its maximum): no share, no gradient
            e[exclude[0].numpy(), exclude[1].numpy()] = -np.inf
        top = e.max(axis=1, initial=-np.inf)
        np.subtract(e, top[:, None], out=e)
        np.exp(e, out=e)
        sums = e.sum(axis=1)
        ctx.e, ctx.sums = e, sums
        ctx.save_for_backward(queries, items, targets)
        return torch.from_numpy(top + np.log(sums) - picked)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        queries, items, targets = ctx.saved_tensors
        if ctx.e is None:  # freed by the first backward (the largest array of a step)
            raise RuntimeError(
                "CatalogueSoftmaxLoss's CPU path runs one backward pass per forward; a second one "
                "(retain_graph=True) needs the loss computed again"
            )
        e, g = ctx.e, grad.contiguous().numpy()
        q, table = queries.detach().contiguous().numpy(), items.detach().contiguous().numpy()
        w = (g / ctx.sums)[:, None]
        d_queries = torch.from_numpy((e @ table) * w - g[:, None] * table[targets.numpy()])
        d_items = torch.from_numpy(e.T @ (q * w))
        d_items.index_add_(0, targets, torch.from_numpy(g[:, None] * q), alpha=-1)
        ctx.e = None
        return d_queries, d_items, None, None


class SampledBCELoss(nn.Module):
    """Binary cross-entropy of the positive's score against 1 and each sampled negative's against 0
    (SASRec, Kang and McAuley 2018): ``softplus(-s⁺) + mean_k softplus(s⁻_k)``.

    ``forward(pos_scores (N,), neg_scores (N, n))``; ``reduction`` over the ``N`` queries.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
        if neg_scores.dim() == 1:
            neg_scores = neg_scores.unsqueeze(-1)
        loss = F.softplus(-pos_scores) + F.softplus(neg_scores).mean(dim=-1)
        return reduce(loss, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
