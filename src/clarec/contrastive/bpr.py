"""Bayesian personalised ranking loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive._reduce import check_reduction, reduce

__all__ = ["BPRLoss"]


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
