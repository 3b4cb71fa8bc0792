"""Bayesian personalised ranking loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive._reduce import check_reduction, reduce

__all__ = ["BPRLoss", "DotProductBPRLoss"]


class BPRLoss(nn.Module):
    """Bayesian personalised ranking loss (Rendle et al., 2009): ``-log σ(s⁺ - s⁻)``.

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over all (positive, negative) pairs.

    ``forward(pos_scores, neg_scores)`` takes positive scores of shape ``(B,)`` and negative scores
    of shape ``(B,)`` or ``(B, n_neg)``; with several negatives each one forms a pair with its row's
    positive. Computed as ``softplus(s⁻ - s⁺)``, which equals ``-log σ(s⁺ - s⁻)`` without
    overflowing for large margins.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
        if neg_scores.dim() == pos_scores.dim() + 1:
            pos_scores = pos_scores.unsqueeze(-1)
        return reduce(F.softplus(neg_scores - pos_scores), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class DotProductBPRLoss(nn.Module):
    """:class:`BPRLoss` (mean) of dot-product scores plus an optional L2 term, with the gradient
    written in closed form.

    Args:
        l2: weight of the squared norms of the batch's vectors per example,
            ``l2 × (Σ‖u‖² + Σ‖v‖²) / B`` (BPR matrix factorisation's regulariser; 0 leaves it out).

    ``forward(users, items)`` takes user vectors ``(B, d)`` and item vectors ``(B, 1 + n, d)``: column 0
    each row's positive, then its ``n`` negatives. The value is ``BPRLoss()(u·p, u·n)`` plus the L2
    term, and the gradients are autograd's for that expression, up to float rounding. On CPU, autograd
    spends most of a matrix-factorisation step on the broadcast products of the scores, the squares
    and their backward; here the backward is a few fused row-wise products
    (``benchmarks/results/peers-recbole-ml-100k.md``).
    """

    def __init__(self, l2: float = 0.0):
        super().__init__()
        if not l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.l2 = float(l2)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if users.dim() != 2 or items.dim() != 3 or items.shape[0] != users.shape[0] or items.shape[1] < 2:
            raise ValueError(
                f"expected users (B, d) and items (B, 1 + n, d) with n >= 1, got {tuple(users.shape)} "
                f"and {tuple(items.shape)}"
            )
        return _DotBPR.apply(users, items, self.l2)

    def extra_repr(self) -> str:
        return f"l2={self.l2}"


class _DotBPR(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, v: torch.Tensor, l2: float) -> torch.Tensor:
        # one plain row-wise product per column: no (B, 1, d) x (B, k, d) broadcast
        scores = torch.stack([(u * v[:, j]).sum(-1) for j in range(v.shape[1])], dim=1)
        margin = scores[:, 1:] - scores[:, :1]  # s⁻ - s⁺ per (positive, negative) pair
        ctx.save_for_backward(u, v, margin)
        ctx.l2 = l2
        loss = F.softplus(margin).mean()
        if l2:
            loss = loss + l2 * (u.square().sum() + v.square().sum()) / len(u)
        return loss

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        u, v, margin = ctx.saved_tensors
        # d softplus(m) / dm = σ(m), averaged over the B × n pairs; d‖x‖² / dx = 2x
        dm = torch.sigmoid(margin) * (grad / margin.numel())
        d_pos = -dm.sum(1, keepdim=True)
        decay = 2.0 * ctx.l2 / len(u) * grad
        grad_u = torch.addcmul(u * decay, d_pos, v[:, 0])
        grad_v = v * decay
        grad_v[:, 0].addcmul_(d_pos, u)
        for j in range(margin.shape[1]):
            grad_u.addcmul_(dm[:, j : j + 1], v[:, j + 1])
            grad_v[:, j + 1].addcmul_(dm[:, j : j + 1], u)
        return grad_u, grad_v, None
