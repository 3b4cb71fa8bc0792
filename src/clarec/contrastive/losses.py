"""Contrastive and pairwise ranking losses, one ``nn.Module`` per loss.

Each loss takes its hyper-parameters in the constructor and keeps ``forward`` short, so models compose
losses instead of re-writing them. Scores in, scalar out (unless ``reduction="none"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BPRLoss"]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


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
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
        if neg_scores.dim() == pos_scores.dim() + 1:
            pos_scores = pos_scores.unsqueeze(-1)
        return _reduce(F.softplus(neg_scores - pos_scores), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
